/// The one growable allocation of lookm: raw bytes, 64-byte aligned, that grow and never shrink,
/// kept across heads and layers (per tensor stream, per layer input, per workspace slot).
/// Allocating per head cost a fresh mmap and page faults each time.
final class RawBuffer: @unchecked Sendable {
    private(set) var pointer: UnsafeMutableRawPointer?
    private(set) var capacity = 0

    /// At least `bytes` bytes; the contents are unspecified after a growth.
    func reserve(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity || pointer == nil {
            pointer?.deallocate()
            capacity = max(bytes, 64)
            pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        }
        return pointer!
    }

    /// At least `count` elements of `T`, bound to `T` (a buffer holds one element type for life).
    func elements<T>(_ type: T.Type, _ count: Int) -> UnsafeMutableBufferPointer<T> {
        let raw = reserve(count * MemoryLayout<T>.stride)
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: T.self, capacity: count), count: count)
    }

    deinit { pointer?.deallocate() }
}
