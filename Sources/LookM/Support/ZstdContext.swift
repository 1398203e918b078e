import CZstd

/// A zstd compression context, reused by one thread at a time.
final class ZstdContext: @unchecked Sendable {
    let pointer: OpaquePointer

    init() {
        guard let p = ZSTD_createCCtx() else { preconditionFailure("zstd: out of memory for a compression context") }
        pointer = p
    }

    deinit { ZSTD_freeCCtx(pointer) }
}
