# CPack: Debian packages of the programs (`cpack -G DEB` in a build directory; scripts/package.sh
# builds all three). Components:
#   ep    vepf-ep, vepf-ep-configfs (scripts/ep-configfs.sh), vepf-ep@.service, the README and
#         the example board configs: packaged from the static build (VEPF_STATIC: amd64) and the
#         arm64 cross build, one binary that needs no shared library, for an EP root filesystem
#   host  vepf-host, vepf-rpmsg, vepf-vfio-check, vepf-ivshmem-server, vepf-host@.service, the
#         README and the example board configs: packaged from the default build
#   dev   the libraries, headers and pkg-config files (cmake --install only; not packaged)
include(GNUInstallDirs)

install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/vepf-ep@.service
        DESTINATION lib/systemd/system COMPONENT ep)
install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/ep-configfs.sh DESTINATION ${CMAKE_INSTALL_BINDIR}
        RENAME vepf-ep-configfs COMPONENT ep)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/vepf-host@.service
        DESTINATION lib/systemd/system COMPONENT host)
foreach(_c ep host)
  install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/vepf-${_c}
          COMPONENT ${_c})
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/vepf-${_c}
          COMPONENT ${_c})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/board-configs/
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/vepf-${_c}/examples/board-configs COMPONENT ${_c})
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME virtio-epf)
set(CPACK_PACKAGE_VENDOR "virtio-epf")
set(CPACK_PACKAGE_CONTACT "virtio-epf developers <virtio-epf@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_STRIP_FILES ON)  # the debug information stays in the build directory
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <package>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_EP_PACKAGE_NAME vepf-ep)
set(CPACK_DEBIAN_EP_DESCRIPTION
    "virtio over PCIe: the endpoint side\nvepf-ep runs on a PCIe endpoint SoC and serves virtio devices (net, console,\nblock, rpmsg) to vepf-host on the root complex. Statically linked.")
set(CPACK_DEBIAN_HOST_PACKAGE_NAME vepf-host)
set(CPACK_DEBIAN_HOST_DESCRIPTION
    "virtio over PCIe: the root-complex side\nvepf-host claims the endpoint's PCI function through VFIO and drives its virtio\ndevices, giving them to this machine as TAP interfaces, ptys, NBD exports and\nrpmsg sockets.")
set(CPACK_DEBIAN_HOST_PACKAGE_SHLIBDEPS ON)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
endif()
if(VEPF_STATIC)
  set(CPACK_COMPONENTS_ALL ep)  # the static build's vepf-ep
else()
  set(CPACK_COMPONENTS_ALL host)
endif()
include(CPack)
