import CHDF5
import Foundation
import Testing

@testable import LookM

/// The cache writer: the spec's layout, atomic placement, and the reader's consistency checks.
@Suite struct CacheFileTests {
    /// Writes a cache keeping every `stride`-th position of every layer (the others dropped, nothing merged).
    @discardableResult
    static func writeCache(
        from dumpPath: String, to path: String, stride: Int = 2, force: Bool = false,
        codec: Codec = .zstd(level: 3), failAfterLayer: Int? = nil
    ) throws -> CacheReader {
        let dump = try DumpReader(path: dumpPath)
        let s = dump.shape
        let keep = Swift.stride(from: 0, to: s.seqLen, by: stride).map { $0 }
        let output = try AtomicOutput(finalPath: path, force: force, inputs: [dumpPath])
        let writer = try CacheWriter(
            output: output, shape: s, model: dump.model, tokens: dump.tokens, elementType: dump.elementType,
            codec: codec, method: #"{"method":"test","stride":\#(stride)}"#,
            source: SourceInfo.of(dump: dumpPath))
        for i in 0..<s.numLayers {
            if let f = failAfterLayer, i > f { throw LookMError(.other, "simulated failure") }
            let layer = try dump.layer(i)
            let out = try writer.layer(i, kept: keep.count)
            for g in 0..<s.numKVHeads {
                let k = try layer.key.read(head: g)
                let v = try layer.value.read(head: g)
                let kk = keep.flatMap { k[($0 * s.headDim)..<(($0 + 1) * s.headDim)] }
                let vv = keep.flatMap { v[($0 * s.headDim)..<(($0 + 1) * s.headDim)] }
                var slotOf = [Int32](repeating: -1, count: s.seqLen)
                for (j, p) in keep.enumerated() { slotOf[p] = Int32(j) }
                try kk.withUnsafeBufferPointer { kb in
                    try vv.withUnsafeBufferPointer { vb in
                        try out.write(
                            head: g, key: kb, value: vb, position: keep.map { Int32($0) },
                            merged: keep.map { _ in 0 }, slotOf: slotOf)
                    }
                }
            }
        }
        try writer.finish()
        return try CacheReader(path: path)
    }

    @Test(arguments: [ElementType.float16, .bfloat16, .float32])
    func cacheHoldsTheSpecLayoutAndKeptTensors(dtype: ElementType) throws {
        let dir = TemporaryDirectory()
        let dumpPath = try TestDumps.write(TestDumps.small(kvHeads: 2, dtype: dtype), to: dir.file("dump.h5"))
        let cache = try Self.writeCache(from: dumpPath, to: dir.file("cache.h5"))
        let dump = try DumpReader(path: dumpPath)
        #expect(cache.shape == dump.shape)
        #expect(cache.elementType == dtype)
        #expect(cache.source.name == "dump.h5" && cache.source.size > 0)
        #expect(cache.method == #"{"method":"test","stride":2}"#)
        #expect(cache.tokens.modality == dump.tokens.modality && cache.tokens.ids == dump.tokens.ids)
        for i in 0..<dump.shape.numLayers {
            let layer = try cache.layer(i)
            #expect(layer.kept.allSatisfy { $0 == 28 })
            let key = try dump.layer(i).key.read(head: 1)
            let kept = try layer.keys(head: 1)
            #expect(Array(kept[16..<32]) == Array(key[32..<48]))  // slot 1 holds position 2
            let slots = try layer.slots(head: 1)
            #expect(slots.position[1] == 2 && slots.slotOf[1] == -1 && slots.slotOf[2] == 1)
        }
        let report = try Inspector.inspect(path: dir.file("cache.h5"))
        #expect(report.kind == .cache)
        #expect(report.layers.map(\.kept) == [28, 28])
        #expect(report.layers.map(\.merged) == [0, 0])
        #expect(report.layers.map(\.dropped) == [56, 56])  // 28 positions x 2 kv heads
        #expect(report.cache?.method == .object(["method": .string("test"), "stride": .number(2)]))
        #expect(dir.contents == ["cache.h5", "dump.h5"])  // no temporary file left
    }

    @Test func failedWriteLeavesNoFileAndExistingOutputNeedsForce() throws {
        let dir = TemporaryDirectory()
        let dumpPath = try TestDumps.write(TestDumps.small(), to: dir.file("dump.h5"))
        #expect(throws: LookMError.self) {
            try Self.writeCache(from: dumpPath, to: dir.file("cache.h5"), failAfterLayer: 0)
        }
        #expect(dir.contents == ["dump.h5"])

        try Self.writeCache(from: dumpPath, to: dir.file("cache.h5"), stride: 2)
        do {
            try Self.writeCache(from: dumpPath, to: dir.file("cache.h5"), stride: 4)
            Issue.record("overwrote without --force")
        } catch let e as LookMError {
            #expect(e.kind == .output && e.message.contains("--force"))
        }
        #expect(try CacheReader(path: dir.file("cache.h5")).layer(0).kept.allSatisfy { $0 == 28 })
        try Self.writeCache(from: dumpPath, to: dir.file("cache.h5"), stride: 4, force: true)
        #expect(try CacheReader(path: dir.file("cache.h5")).layer(0).kept.allSatisfy { $0 == 14 })
    }

    @Test func outputOntoTheInputIsRefused() throws {
        let dir = TemporaryDirectory()
        let dumpPath = try TestDumps.write(TestDumps.small(), to: dir.file("dump.h5"))
        let before = try Data(contentsOf: URL(fileURLWithPath: dumpPath))
        try FileManager.default.createSymbolicLink(atPath: dir.file("link.h5"), withDestinationPath: dumpPath)
        for target in [dumpPath, dir.file("link.h5")] {
            do {
                _ = try AtomicOutput(finalPath: target, force: true, inputs: [dumpPath])
                Issue.record("accepted \(target)")
            } catch let e as LookMError {
                #expect(e.kind == .output && e.message.contains("is the input file"))
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: dumpPath)) == before)
    }

    @Test func inconsistentSlotTablesAreInvalid() throws {
        let dir = TemporaryDirectory()
        let dumpPath = try TestDumps.write(TestDumps.small(), to: dir.file("dump.h5"))
        try Self.writeCache(from: dumpPath, to: dir.file("cache.h5"), codec: .none)
        FileEditor(dir.file("cache.h5")).replace(
            "/layers/1/slot_of", shape: [4, 56], type: h5t_std_i32le(), memType: h5t_native_int32(),
            values: [Int32](repeating: -1, count: 4 * 56))
        do {
            _ = try Inspector.inspect(path: dir.file("cache.h5"))
            Issue.record("accepted")
        } catch let e as LookMError {
            #expect(e.kind == .invalidInput)
            #expect(
                e.message.contains("/layers/1/slot_of: head 0: position 0 is kept in slot 0 but slot_of says -1"),
                "\(e.message)")
        }
    }
}
