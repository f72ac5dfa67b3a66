/*
 * status.cu — status strings, the thread-local error detail, the version.
 *
 * Computes: nothing on the device. Every launcher in this library
 *   1. calls samk::begin() (clears the detail message and a stale,
 *      non-sticky CUDA error of an earlier unrelated call),
 *   2. validates its params, failing with SAMK_ERR_INVALID_ARG or
 *      SAMK_ERR_UNSUPPORTED and a message "<op>: <what is wrong>",
 *   3. launches on the caller's stream (never allocates, never synchronises),
 *   4. returns samk::check_launch(op): cudaGetLastError() turned into
 *      SAMK_ERR_CUDA with "<op>: <cudaGetErrorName>: <cudaGetErrorString>".
 * The detail message lives in a thread_local buffer: samk_last_error() must be
 * called on the thread that made the failing call (cgo callers lock the OS
 * thread, or fetch the message inside the same C call).
 *
 * Tested by kernels/test/host_test.cu (status strings, messages of rejected
 * arguments; the CUDA error path where the test machine has no device) and by
 * the CUDA-tagged Go tests in sam/nn/gpu.
 */
#include <cublasLt.h>
#include <stdarg.h>
#include <stdio.h>

#include <mutex>
#include <set>
#include <utility>

#include "common.cuh"

#ifndef SAMK_VERSION_STRING
#define SAMK_VERSION_STRING "0.0.0"
#endif

namespace {

constexpr size_t kMsgLen = 512;
thread_local char g_msg[kMsgLen];

/* (kernel, device) pairs whose dynamic shared memory limit is raised. */
std::mutex g_smem_mu;
std::set<std::pair<const void *, int>> g_smem_set;

void vset(const char *prefix, const char *fmt, va_list ap) {
    int n = 0;
    if (prefix != nullptr) {
        n = snprintf(g_msg, kMsgLen, "%s: ", prefix);
        if (n < 0) n = 0;
        if (static_cast<size_t>(n) >= kMsgLen) return; // truncated, already terminated
    }
    vsnprintf(g_msg + n, kMsgLen - static_cast<size_t>(n), fmt, ap);
}

#define SAMK_STR2(x) #x
#define SAMK_STR(x) SAMK_STR2(x)

const char kVersion[] = "samkernels " SAMK_VERSION_STRING " (CUDA " SAMK_STR(__CUDACC_VER_MAJOR__) "." SAMK_STR(
    __CUDACC_VER_MINOR__) ", cuBLASLt " SAMK_STR(CUBLAS_VER_MAJOR) "." SAMK_STR(CUBLAS_VER_MINOR) ")";

} // namespace

namespace samk {

samk_status fail(samk_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(nullptr, fmt, ap);
    va_end(ap);
    return s;
}

samk_status fail_op(samk_status s, const char *op, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(op, fmt, ap);
    va_end(ap);
    return s;
}

void begin(void) {
    g_msg[0] = '\0';
    (void)cudaGetLastError();
}

samk_status fail_cuda(const char *op, cudaError_t e) {
    const samk_status s = e == cudaErrorMemoryAllocation ? SAMK_ERR_OUT_OF_MEMORY : SAMK_ERR_CUDA;
    return fail(s, "%s: %s: %s", op, cudaGetErrorName(e), cudaGetErrorString(e));
}

samk_status check_launch(const char *op) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return SAMK_OK;
    return fail_cuda(op, e);
}

samk_status ensure_dynamic_smem(const char *op, const void *func, size_t bytes) {
    if (bytes <= 48 * 1024) return SAMK_OK;
    int dev = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return fail_cuda(op, e);
    if (bytes > size_t(optin)) {
        return fail(SAMK_ERR_UNSUPPORTED, "%s: needs %zu bytes of shared memory per block, the device allows %d", op,
                    bytes, optin);
    }
    std::lock_guard<std::mutex> lock(g_smem_mu);
    const std::pair<const void *, int> key(func, dev);
    if (g_smem_set.count(key) != 0) return SAMK_OK;
    e = cudaFuncSetAttribute(func, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    if (e != cudaSuccess) return fail_cuda(op, e);
    g_smem_set.insert(key);
    return SAMK_OK;
}

samk_status fail_cublas(const char *op, const char *what, int cublas_status) {
    const char *name = cublasLtGetStatusName(static_cast<cublasStatus_t>(cublas_status));
    const samk_status s = cublas_status == CUBLAS_STATUS_ALLOC_FAILED ? SAMK_ERR_OUT_OF_MEMORY : SAMK_ERR_CUBLAS;
    return fail(s, "%s: %s: %s", op, what, name != nullptr ? name : "unknown cuBLAS status");
}

} // namespace samk

extern "C" {

const char *samk_status_string(samk_status s) {
    switch (s) {
    case SAMK_OK: return "ok";
    case SAMK_ERR_INVALID_ARG: return "invalid argument";
    case SAMK_ERR_UNSUPPORTED: return "unsupported";
    case SAMK_ERR_CUDA: return "CUDA error";
    case SAMK_ERR_CUBLAS: return "cuBLAS error";
    case SAMK_ERR_WORKSPACE: return "workspace too small";
    case SAMK_ERR_OUT_OF_MEMORY: return "out of memory";
    }
    return "unknown status";
}

const char *samk_last_error(void) { return g_msg; }

const char *samk_version(void) { return kVersion; }

} // extern "C"
