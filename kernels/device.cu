/* The device, as the host driver needs to know it. */
#include "kernels/kernels.h"

extern "C" int gpt2_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error for later callers */
        return 0;
    }
    return count;
}

extern "C" int gpt2_cuda_set_device(int device) {
    if (cudaSetDevice(device) == cudaSuccess) return 0;
    cudaGetLastError();
    return -1;
}
