import Foundation
import Testing

@testable import LookM

/// The golden dumps (../shared/golden, made from the authors' code) are valid dumps: lookm reads
/// them, ignoring the `/expected` group they carry.
@Suite struct GoldenDumpTests {
    static let directory = "\(TestDumps.packageRoot)/../shared/golden"
    static let files = ["synthetic-s1-i1.h5", "synthetic-s2-i1.h5", "tinyllava-s4-i2.h5"]

    @Test(arguments: files)
    func goldenDumpIsReadable(name: String) throws {
        let path = "\(Self.directory)/\(name)"
        #expect(FileManager.default.fileExists(atPath: path), "missing \(path): CI puts ../shared beside the checkout")
        let report = try Inspector.inspect(path: path)
        #expect(report.kind == .dump)
        #expect(report.dtype == .float32)
        #expect(report.shape.headDim == 128 && report.shape.numHeads == 2)
        #expect(report.layers.allSatisfy { $0.datasets?.contains("attn_score") == true })
        // Images are 576-token spans, as in LLaVA-1.5.
        #expect(!report.tokens.spans.isEmpty && report.tokens.spans.allSatisfy { $0.count == 576 })
        let dump = try DumpReader(path: path)
        let key = try dump.layer(dump.shape.numLayers - 1).key.read(head: 1)
        #expect(key.count == dump.shape.seqLen * 128)
        #expect(key.contains { $0 != 0 })
    }
}
