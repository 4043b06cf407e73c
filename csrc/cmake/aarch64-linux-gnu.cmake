# Cross-compiling the kernels and their C++ tests for aarch64 with Debian's
# g++-aarch64-linux-gnu; ctest runs the (static) test binaries under qemu-aarch64 -cpu max,
# which offers NEON, dotprod, i8mm and fp16, so every ARM path is exercised.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-cpu;max)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
