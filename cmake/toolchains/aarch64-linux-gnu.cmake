# Cross-building for arm64 EP SoCs with Debian's cross toolchain (g++-aarch64-linux-gnu) and
# Debian multiarch: the target's libraries are the :arm64 -dev packages in
# /usr/lib/aarch64-linux-gnu (scripts/install-deps.sh --arm64 installs them).
# Programs built here run on this machine under qemu-user (qemu-aarch64-static): CTest and
# gtest_discover_tests run the test binaries through CMAKE_CROSSCOMPILING_EMULATOR.
# usage: cmake --preset arm64   (or -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Look for the target's packages and libraries in the multiarch directories only, never in
# this machine's x86-64 ones; programs (pkg-config, the emulator) come from this machine.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

find_program(VEPF_QEMU_AARCH64 qemu-aarch64-static)
if(VEPF_QEMU_AARCH64)
  # -L: where a dynamically linked test finds the arm64 loader and libc (Debian's cross libc).
  set(CMAKE_CROSSCOMPILING_EMULATOR "${VEPF_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu")
endif()
