# `cmake --install`: the programs, and the libraries with their headers and pkg-config files so
# that an application can run the EP server (vepf-ep.pc) or the host bus (vepf-host.pc) in its
# own process. Headers of common/ go to include/vepf/; the EP's and the host's own headers
# (devices/, server/, drivers/, bus/, ...) to include/vepf-ep/ and include/vepf-host/, which the
# .pc files put on the include path. The libraries are static archives (Debian's way for a
# library without a stable ABI); the .pc files name them in link order. All of it is the "dev"
# component, which no package carries (cmake/packaging.cmake).
include(GNUInstallDirs)

set(_vepf_common_libs vepf_rpmsg_channels vepf_netback vepf_platform vepf_vfio vepf_app vepf_config vepf_os
    vepf_layout vepf_base)
install(TARGETS ${_vepf_common_libs} vepf_gpio vepf_ep_devices vepf_ep_server
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
foreach(_d base virtio_layout os config platform netback app vfio gpio log rpmsg_channels)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/common/${_d}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
endforeach()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/ep-firmware/src/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vepf-ep
        COMPONENT dev FILES_MATCHING PATTERN "*.hpp")

list(JOIN _vepf_common_libs " -l" _vepf_common_l)
# The .pc files find the tree relative to themselves, so `cmake --install --prefix DIR` works.
file(RELATIVE_PATH _vepf_pc_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
set(VEPF_PC_PREFIX "\${pcfiledir}/${_vepf_pc_up}")
set(VEPF_PC_EP_LIBS "-lvepf_ep_server -lvepf_ep_devices -l${_vepf_common_l} -lvepf_gpio")
configure_file(${PROJECT_SOURCE_DIR}/cmake/pkgconfig/vepf-ep.pc.in ${PROJECT_BINARY_DIR}/vepf-ep.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/vepf-ep.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

if(NOT VEPF_EP_ONLY)
  install(TARGETS vepf_host_bus vepf_host_drivers vepf_nbd vepf_pci_find ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/host-driver/src/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vepf-host
          COMPONENT dev FILES_MATCHING PATTERN "*.hpp")
  set(VEPF_PC_HOST_LIBS "-lvepf_host_bus -lvepf_host_drivers -lvepf_nbd -lvepf_pci_find -l${_vepf_common_l}")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/pkgconfig/vepf-host.pc.in ${PROJECT_BINARY_DIR}/vepf-host.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/vepf-host.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

  # The C API (vepf/rpmsg.h): both sides, so a C program links with C++'s runtime named.
  install(TARGETS vepf_rpmsg ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/api/rpmsg/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
  set(VEPF_PC_RPMSG_LIBS "-lvepf_rpmsg -lvepf_ep_server -lvepf_ep_devices -lvepf_host_bus -lvepf_host_drivers -lvepf_nbd -lvepf_pci_find -l${_vepf_common_l} -lvepf_gpio")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/pkgconfig/vepf-rpmsg.pc.in ${PROJECT_BINARY_DIR}/vepf-rpmsg.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/vepf-rpmsg.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endif()
