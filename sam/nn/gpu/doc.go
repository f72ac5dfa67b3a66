// Package gpu is the CUDA implementation of nn.Backend: every op runs on an
// NVIDIA GPU through the hand-written kernels of kernels/ (package
// bindings) and cuBLASLt, on device memory from a pool (package cuda). It
// registers the device kind "cuda" with nn.Register, so that importing the
// package is enough for nn.Open("cuda:1", nn.Options{Precision: "bf16"}).
//
// The package builds only with the `cuda` tag (make cuda); without it this
// file is all there is and nothing registers.
//
// # Precisions
//
//   - "fp32" (the default) agrees with the CPU reference backend to about
//     1e-5 relative to the scale of each result: fp32 storage, fp32
//     products (CUBLAS_COMPUTE_32F; TF32 is never used, it moves SAM's
//     logits far outside the fp32 tolerances), fp32 softmax and layernorm.
//   - "bf16" stores weights and activations as bfloat16 (half the memory
//     and bandwidth, tensor cores); products accumulate in fp32, and softmax
//     and normalisation statistics are fp32. Upload converts float32 to
//     bfloat16 on the device, Download converts back; UpscaleMasks returns
//     float32 logits in both precisions, since masks are thresholded at 0.
//
// # Ops
//
// Each op maps to kernels as follows: Linear = samk_gemm (weight as
// transposed B, bias and activation in the epilogue; cuBLASLt, falling back
// to the reference kernel for problems cuBLASLt refuses, or the reference
// kernel samk_gemm_reference throughout with SAMGO_GEMM=reference, as under
// the GPU simulator), MatMulT = batched
// samk_gemm, Conv2D = samk_im2col + samk_gemm (1×1 convolutions skip
// im2col), ConvTranspose2D = samk_gemm + samk_convt_scatter, LayerNorm and
// AddLayerNorm = samk_layernorm, Attention and AttentionQKV = samk_attention
// (strides describe the packed qkv layout; head dims the kernel lacks,
// samk_attention_supports, are zero-padded to one it has), WindowPartition/Unpartition = samk_window,
// Add = samk_add, Activation = samk_bias_act, Concat/Slice/Repeat =
// cudaMemcpy2DAsync, Transpose = samk_transpose, MaskDownsample =
// samk_mask_downsample (or the unfused ops for sizes that are not multiples
// of 4), UpscaleMasks = samk_upscale_masks.
//
// # Streams, threads and the current device
//
// A Backend owns one non-blocking CUDA stream, and every op only enqueues
// work on it: nothing synchronises except Download (which must return the
// data) and Sync. Errors of asynchronous work therefore surface at the next
// Download or Sync.
//
// CUDA's current device belongs to the OS thread, while a goroutine may
// move between threads at any call into the runtime. Every op therefore
// runs inside a critical section that takes the backend's mutex, pins the
// goroutine to its thread (runtime.LockOSThread), makes the backend's
// device current (cudaSetDevice, cheap when it already is) and only then
// launches; it unpins and unlocks when the op has been enqueued. Package
// cuda's own calls (copies, allocations, events) set their device inside
// the same cgo call as the work, so they are right on any thread. A Backend
// may thus be used from any goroutine, and from several at once (ops are
// serialised); backends on different devices run independently.
//
// Fork returns a second backend on the same device with its own stream,
// memory pool and cuBLASLt workspace, which accepts the original's tensors
// (weights are shared): two forks overlap their work on the GPU.
//
// # Memory
//
// Tensors live in a cuda.Pool (large cudaMalloc chunks, best-fit
// sub-allocation, stream-ordered reuse). Release returns a tensor's memory
// to the pool at once; a Reshape view shares its tensor's memory, which
// goes back when the last of them is released. Scratch space (im2col
// columns, GEMM intermediates, kernel workspaces) comes from the same pool
// and is returned when the op has been enqueued. An allocation the device
// cannot satisfy fails the op with an *nn.Error wrapping nn.ErrOutOfMemory
// (callers may split the work and retry), and so does a kernel or cuBLASLt
// call that runs out of memory (bindings.ErrOutOfMemory). PeakMemory, ResetPeakMemory,
// MemoryInUse and PoolStats report the pool's figures; Close returns
// everything to the driver.
//
// Setting SAMGO_CUDA_POOL=exact gives every tensor its own cudaMalloc, so
// that compute-sanitizer's memcheck sees each tensor's bounds (make
// test-gpu SANITIZE=1 does this).
//
// # Profiling
//
// The backend is an nn.Marker: the model's ranges (image encoder, encoder
// block N, encoder neck, prompt encoder, mask decoder, mask
// postprocessing) become NVTX ranges, which Nsight Systems shows above the
// kernels (make profile).
//
// # Testing without a GPU
//
// make test-sim runs every test of this package under GPGPU-Sim
// (tests/gpusim): tables hold simulation-sized cases for every code path,
// and the SAM-sized cases skip there (cudatest.Simulated).
package gpu
