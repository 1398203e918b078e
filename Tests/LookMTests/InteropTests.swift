import Foundation
import Testing

@testable import LookM

/// lookm's zstd filter against h5py + hdf5plugin, both directions, every element type.
/// Needs the pinned Python environment (scripts/setup.sh makes `.venv`; LOOKM_PYTHON overrides).
@Suite struct InteropTests {
    static var python: String {
        ProcessInfo.processInfo.environment["LOOKM_PYTHON"] ?? "\(TestDumps.packageRoot)/.venv/bin/python"
    }

    /// Runs a Python snippet; returns stdout, records an issue with stderr on failure.
    static func runPython(_ code: String, _ args: [String]) throws -> String? {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record("no Python environment at \(python): run scripts/setup.sh (or set LOOKM_PYTHON)")
            return nil
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", code] + args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            Issue.record("python failed: \(String(decoding: stderr, as: UTF8.self))")
            return nil
        }
        return String(decoding: stdout, as: UTF8.self)
    }

    /// The pattern both sides write and expect: exactly representable in float16 and bfloat16.
    static let pattern = "np.arange(3 * 300 * 16, dtype=np.float32).reshape(3, 300, 16) % 37 * 0.25 - 4"
    static func patternValues() -> [Float] { (0..<(3 * 300 * 16)).map { Float($0 % 37) * 0.25 - 4 } }

    @Test(arguments: [ElementType.float16, .bfloat16, .float32])
    func h5pyReadsWhatLookmWrites(dtype: ElementType) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("lookm.h5")
        do {
            let file = try H5File.create(path)
            let w = try TensorWriter(file: file, path: "/t", type: dtype, shape: [3, 300, 16], codec: .zstd(level: 5))
            let v = Self.patternValues()
            for h in 0..<3 { try w.write(head: h, Array(v[(h * 4800)..<((h + 1) * 4800)])) }
            try file.flush()
        }
        let code = """
            import sys, h5py, hdf5plugin, numpy as np
            with h5py.File(sys.argv[1], "r") as f:
                d = f["t"]
                assert "32015" in str(d._filters) or 32015 in d._filters, d._filters
                x = d[...]
                if d.attrs.get("dtype") == "bfloat16":
                    assert x.dtype == np.uint16
                    x = (x.astype(np.uint32) << 16).view(np.float32)
                want = \(Self.pattern)
                assert np.array_equal(x.astype(np.float32), want), "values differ"
                print(d.dtype, sorted(map(str, d._filters)))
            """
        let out = try Self.runPython(code, [path])
        #expect(out?.contains(dtype == .bfloat16 ? "uint16" : dtype.rawValue) == true, "\(out ?? "")")
    }

    @Test(arguments: [ElementType.float16, .bfloat16, .float32])
    func lookmReadsWhatH5pyWrites(dtype: ElementType) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("h5py.h5")
        let code = """
            import sys, h5py, hdf5plugin, numpy as np
            x = \(Self.pattern)
            kind = sys.argv[2]
            with h5py.File(sys.argv[1], "w") as f:
                # Chunks that span heads and cut rows unevenly: read through the sized chunk cache.
                z = dict(chunks=(2, 100, 16), shuffle=True, **hdf5plugin.Zstd(clevel=5))
                if kind == "bfloat16":
                    bits = (x.view(np.uint32) >> 16).astype(np.uint16)
                    f.create_dataset("t", data=bits, **z).attrs["dtype"] = "bfloat16"
                else:
                    f.create_dataset("t", data=x.astype(kind), **z)
            """
        guard try Self.runPython(code, [path, dtype.rawValue]) != nil else { return }
        let reader = try TensorReader(try H5File.openForReading(path).openDataset("/t"))
        #expect(reader.type == dtype)
        #expect(reader.dataset.filters.map(\.id) == [2, ZstdFilter.id])
        var all: [Float] = []
        for h in 0..<3 { all += try reader.read(head: h) }
        #expect(all == Self.patternValues())
    }
}
