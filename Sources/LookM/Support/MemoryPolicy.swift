import CKernels

/// Keeps peak memory flat across layers. Streaming allocates and frees the same large buffers
/// (HDF5 chunk buffers, per-head tensors) once per layer; glibc's default raises its mmap threshold
/// after the first such free and then serves them from the heap, where small long-lived HDF5
/// metadata pins the freed space: measured, RSS grew by about 1 MiB per layer (38 MiB for 2 layers,
/// 68 MiB for 32). A fixed threshold maps every block of 256 KiB or more on its own and returns it
/// to the system when freed, for a few per cent more time in page faults.
enum MemoryPolicy {
    static func configure() {
        _ = lookm_fix_mmap_threshold(256 << 10)
    }
}
