import CKernels

/// Keeps peak memory flat across layers. Streaming allocates and frees the same large buffers
/// (HDF5 chunk buffers, per-head tensors) once per layer; glibc's default raises its mmap threshold
/// after the first such free and then serves them from the heap, where small long-lived HDF5
/// metadata pins the freed space: measured, RSS grew by about 1 MiB per layer (38 MiB for 2 layers,
/// 68 MiB for 32). A fixed threshold maps every block of 1 MiB or more on its own and returns it
/// to the system when freed. It was 256 KiB until report's per-head cache arrays (a few hundred
/// KiB each, thousands per run) showed what that costs: a fresh mapping, page faults and zeroed
/// pages every time, 0.4 s of system time in `report --reference` on the LLaVA-7B shape (2.0 ->
/// 1.65 s); peak RSS stayed the same there and for compress, and Tests/python/test_memory.py keeps
/// inspect, compress and report flat from 2 to 32 layers.
/// Below that threshold, glibc returns the top of the heap to the system as soon as 128 KiB of it
/// is free, and the next layer's arrays fault it back in, zeroed: report frees and reallocates
/// about 27 MiB of them per layer. Keeping up to 64 MiB cut its system time by a fifth (0.78 ->
/// 0.63 s, wall 1.38 -> 1.27 s, peak RSS unchanged).
enum MemoryPolicy {
    static func configure() {
        _ = lookm_fix_malloc_thresholds(1 << 20, 64 << 20)
    }
}
