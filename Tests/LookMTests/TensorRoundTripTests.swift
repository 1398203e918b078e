import CHDF5
import CKernels
import Testing

@testable import LookM

/// Every element type and codec: what is written is read back identically.
@Suite struct TensorRoundTripTests {
    static let cases: [(ElementType, Codec)] = [ElementType.float16, .bfloat16, .float32].flatMap { t in
        [Codec.none, .zstd(level: 3), .deflate(level: 4)].map { (t, $0) }
    }

    /// Values spanning magnitudes, signs and a subnormal, so rounding and shuffling are exercised.
    static func values(_ n: Int) -> [Float] {
        (0..<n).map { i -> Float in
            let sign: Float = i % 2 == 0 ? 1 : -1
            let tiny: Float = Float(i % 7) * 1e-6 * sign
            return Float(i % 97 - 48) * 0.173 + tiny
        }
    }

    @Test(arguments: cases)
    func writeThenReadIsIdentical(type: ElementType, codec: Codec) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("t.h5")
        let heads = 3
        let rows = 50
        let cols = 8
        let input = Self.values(heads * rows * cols)
        do {
            let file = try H5File.create(path)
            let w = try TensorWriter(file: file, path: "/t", type: type, shape: [heads, rows, cols], codec: codec)
            for h in 0..<heads { try w.write(head: h, Array(input[(h * rows * cols)..<((h + 1) * rows * cols)])) }
            try file.flush()
        }
        let reader = try TensorReader(try H5File.openForReading(path).openDataset("/t"))
        #expect(reader.type == type)
        #expect(reader.shape == [heads, rows, cols])
        let expectedFilters: [Int32] = codec == .none ? [] : [2, codec.name == "zstd" ? ZstdFilter.id : 1]
        #expect(reader.dataset.filters.map(\.id) == expectedFilters)
        for h in 0..<heads {
            let got = try reader.read(head: h)
            let want = Array(input[(h * rows * cols)..<((h + 1) * rows * cols)]).map { roundTo(type, $0) }
            #expect(got.map(\.bitPattern) == want.map(\.bitPattern))
        }
        // A row window of one head, as SnapKV reads window_attn.
        var part = [Float](repeating: 0, count: 5 * cols)
        try part.withUnsafeMutableBufferPointer { try reader.read(head: 1, rows: 10..<15, into: $0) }
        #expect(
            part.map(\.bitPattern)
                == Array(input[(rows * cols + 10 * cols)..<(rows * cols + 15 * cols)]).map {
                    roundTo(type, $0).bitPattern
                })
    }

    @Test func bfloat16FloatFormAndFloat64ScoresAreRead() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("t.h5")
        let input: [Float] = [1, -2.5, 3.140625, 0.0078125]
        do {
            _ = try H5File.create(path)
        }
        do {
            let edit = FileEditor(path)
            // bfloat16 as an HDF5 float type (1 sign, 8 exponent, 7 mantissa bits), as h5py's low-level API writes it.
            let bf = H5Tcopy(h5t_ieee_f32le())
            H5Tset_fields(bf, 15, 7, 8, 0, 7)
            H5Tset_size(bf, 2)
            H5Tset_ebias(bf, 127)
            var bits = [UInt16](repeating: 0, count: input.count)
            lookm_f32_to_bf16(input, &bits, input.count)
            edit.replace("/bf", shape: [1, 4], type: bf, memType: bf, values: bits)
            H5Tclose(bf)
            edit.replace(
                "/f64", shape: [1, 4], type: h5t_ieee_f64le(), memType: h5t_native_double(),
                values: input.map(Double.init))
        }
        let file = try H5File.openForReading(path)
        let bf = try TensorReader(try file.openDataset("/bf"))
        #expect(bf.type == .bfloat16)
        #expect(try bf.read(head: 0) == input)
        let f64 = try TensorReader(try file.openDataset("/f64"))
        #expect(f64.type == .float64)
        #expect(try f64.read(head: 0) == input)
    }

    @Test func integerTablesRoundTrip() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("t.h5")
        let table = TokenTable(
            modality: [.text, .image, .image, .video, .audio, .text], segment: [-1, 0, 0, 1, 2, -1],
            ids: [1, -1, -1, -1, -1, 29871])
        do {
            let file = try H5File.create(path)
            try table.write(file)
            try file.flush()
        }
        let back = try TokenTable.read(try H5File.openForReading(path), seqLen: 6)
        #expect(back.modality == table.modality)
        #expect(back.segment == table.segment)
        #expect(back.ids == table.ids)
        #expect(back.spans.map(\.start) == [1, 3, 4])
        #expect(back.spans.map(\.count) == [2, 1, 1])
    }

    private func roundTo(_ type: ElementType, _ x: Float) -> Float {
        switch type {
        case .float16: return Float(Float16(x))
        case .bfloat16:
            var b: UInt16 = 0
            var f: Float = 0
            var v = x
            lookm_f32_to_bf16(&v, &b, 1)
            lookm_bf16_to_f32(&b, &f, 1)
            return f
        default: return x
        }
    }
}

/// Chunks encoded by lookm's workers (convert, shuffle, zstd) equal what HDF5's filters make.
@Suite struct ChunkEncoderTests {
    @Test(arguments: [
        (ElementType.float16, Codec.zstd(level: 3)), (.bfloat16, .zstd(level: 1)), (.float32, .none), (.float16, .none),
    ])
    func encodedChunksReadBackAndMatchHDF5sFilters(type: ElementType, codec: Codec) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("t.h5")
        let heads = 2
        let rows = 700
        let cols = 64  // 700 rows: two uneven chunks, the last one padded
        let input = TensorRoundTripTests.values(heads * rows * cols)
        do {
            let file = try H5File.create(path)
            let viaHDF5 = try TensorWriter(
                file: file, path: "/a", type: type, shape: [heads, rows, cols], codec: codec)
            let viaEncoder = try TensorWriter(
                file: file, path: "/b", type: type, shape: [heads, rows, cols], codec: codec)
            #expect(viaEncoder.encoder.supported)
            for h in 0..<heads {
                let part = Array(input[(h * rows * cols)..<((h + 1) * rows * cols)])
                try viaHDF5.write(head: h, part)
                try viaEncoder.writeEncoded(head: h, part.withUnsafeBufferPointer { viaEncoder.encoder.encode($0) })
            }
            try file.flush()
        }
        let file = try H5File.openForReading(path)
        let a = try TensorReader(try file.openDataset("/a"))
        let b = try TensorReader(try file.openDataset("/b"))
        #expect(a.dataset.storageBytes == b.dataset.storageBytes)
        for h in 0..<heads { #expect(try a.read(head: h).map(\.bitPattern) == b.read(head: h).map(\.bitPattern)) }
    }
}
