import Foundation
import Testing

@testable import LookM

@Suite struct SynthTests {
    /// Every tensor of every layer, as raw floats, for byte-level comparisons.
    static func tensors(_ path: String) throws -> [[Float]] {
        let dump = try DumpReader(path: path)
        var all: [[Float]] = []
        for i in 0..<dump.shape.numLayers {
            for t in try dump.layer(i).tensors { for h in 0..<t.shape[0] { all.append(try t.read(head: h)) } }
        }
        return all
    }

    @Test func sameSeedSameDumpWhateverTheThreadCount() throws {
        let dir = TemporaryDirectory()
        let o = TestDumps.small(kvHeads: 2)
        _ = try SyntheticDump.write(o, to: dir.file("a.h5"), force: false, threads: 1)
        _ = try SyntheticDump.write(o, to: dir.file("b.h5"), force: false, threads: 2)
        let a = try Data(contentsOf: URL(fileURLWithPath: dir.file("a.h5")))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir.file("b.h5")))
        #expect(a == b)
        var other = o
        other.seed = 1
        _ = try SyntheticDump.write(other, to: dir.file("c.h5"), force: false, threads: 2)
        #expect(try Self.tensors(dir.file("a.h5")) != Self.tensors(dir.file("c.h5")))
    }

    @Test func promptSpreadsTextAroundImages() throws {
        var o = SynthOptions()
        o.images = 3
        o.imageTokens = 10
        o.textTokens = 40
        var rng = SeededRandom(seed: 0)
        let p = SyntheticPrompt(o, rng: &rng)
        let spans = p.tokens.spans
        #expect(spans.map(\.count) == [10, 10, 10])
        #expect(spans[0].start > 0)  // system prompt first
        #expect(spans[1].start > spans[0].end)  // text between images
        #expect(spans[2].end < o.seqLen)  // the question last
        #expect(p.tokens.textCount == 40)
        #expect(p.tokens.ids?.first == 1)
        #expect(spans.map(\.segment) == [0, 1, 2])
    }

    @Test func invalidShapesAreUsageErrors() {
        var o = SynthOptions()
        o.heads = 6
        o.kvHeads = 4
        #expect(throws: LookMError.usage("--heads 6 is not a multiple of --kv-heads 4")) { try o.validate() }
        o = SynthOptions()
        o.images = 0
        o.textTokens = 0
        #expect((try? o.validate()) == nil)
        o = SynthOptions()
        o.window = o.seqLen + 1
        #expect((try? o.validate()) == nil)
    }
}
