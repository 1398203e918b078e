import CHDF5

/// Owns one HDF5 identifier and closes it exactly once, on every path (errors included).
/// Every `hid_t` LookM obtains is wrapped in one of these right after the call that made it.
final class H5Handle {
    let id: hid_t
    private let closer: @convention(c) (hid_t) -> herr_t

    init(_ id: hid_t, closer: @escaping @convention(c) (hid_t) -> herr_t) {
        self.id = id
        self.closer = closer
    }

    deinit { _ = closer(id) }
}

/// Where an HDF5 call happened, so that its failure becomes a `LookMError` naming the file and the
/// object, with the exit code of the side it happened on (input: 3, output: 4).
struct H5Site: Sendable {
    enum Side: Sendable { case input, output }
    let file: String
    let side: Side

    func error(_ object: String?, _ what: String) -> LookMError {
        switch side {
        case .input: return .invalid(file, object, what)
        case .output: return .output(file, object, what)
        }
    }

    /// Turns a negative HDF5 return into a thrown error carrying HDF5's innermost message.
    @discardableResult
    func check<T: BinaryInteger>(_ result: T, _ object: String?, _ action: String) throws -> T {
        if result < 0 { throw error(object, "\(action) failed\(H5Library.lastErrorSuffix())") }
        return result
    }

    /// Wraps a freshly created id, throwing if HDF5 returned an error instead.
    func own(
        _ id: hid_t, _ object: String?, _ action: String,
        closer: @escaping @convention(c) (hid_t) -> herr_t
    ) throws -> H5Handle {
        try check(id, object, action)
        return H5Handle(id, closer: closer)
    }
}

/// Process-wide HDF5 set-up: silences HDF5's own error printing and registers the zstd filter;
/// with it, the allocator's policy and OpenBLAS's single thread, which every command wants too.
public enum H5Library {
    private static let ready: Bool = {
        MemoryPolicy.configure()
        BLAS.configure()
        h5_errors_off()
        return ZstdFilter.register()
    }()

    /// Idempotent; every entry point that opens or creates a file calls it first.
    public static func initialize() {
        _ = ready
    }

    /// ": <innermost HDF5 message>" of the current thread's error stack, or "".
    static func lastErrorSuffix() -> String {
        var messages: [String] = []
        withUnsafeMutablePointer(to: &messages) { ptr in
            _ = H5Ewalk2(
                h5e_default(), H5E_WALK_DOWNWARD,
                { _, err, client in
                    if let err, let desc = err.pointee.desc, let client {
                        client.assumingMemoryBound(to: [String].self).pointee.append(String(cString: desc))
                    }
                    return 0
                }, ptr)
        }
        H5Eclear2(h5e_default())
        guard let last = messages.last(where: { !$0.isEmpty }) else { return "" }
        return ": \(last)"
    }
}
