import CHDF5
import Foundation
import Testing

@testable import LookM

/// `--variant reference` against the authors' implementation: every `/expected/<kv_mode>@<j>` group
/// of every golden dump (../shared/golden/README.md): same kept count, every key and value within
/// 1e-4.
@Suite struct GoldenCompressTests {
    static let modes: [String: (selector: String, merge: String)] = [
        "text_prior_pivot_merge": ("text-prior", "pivot"), "text_prior_avg_merge": ("text-prior", "avg"),
        "text_prior_weighted_merge": ("text-prior", "weighted"), "pivot_merge": ("h2o", "pivot"),
        "avg_merge": ("h2o", "avg"), "weighted_merge": ("h2o", "weighted"), "h2o": ("h2o", "none"),
    ]

    struct GoldenGroup: CustomTestStringConvertible, Sendable {
        let file: String
        let name: String
        var testDescription: String { "\(file) \(name)" }
    }

    static var groups: [GoldenGroup] {
        GoldenDumpTests.files.flatMap { file -> [GoldenGroup] in
            let path = "\(GoldenDumpTests.directory)/\(file)"
            guard let f = try? H5File.openForReading(path) else { return [GoldenGroup(file: file, name: "(missing)")] }
            return H5Names.children(of: f, "/expected").map { GoldenGroup(file: file, name: $0) }
        }
    }

    @Test func everyGoldenFileHasItsGroups() {
        let g = Self.groups
        #expect(g.count == 84, "expected 3 files x 28 groups, found \(g.count)")
        #expect(Set(g.map { String($0.name.split(separator: "@")[0]) }) == Set(Self.modes.keys))
    }

    @Test(arguments: groups)
    func referenceMatchesTheAuthorsCode(_ group: GoldenGroup) throws {
        let path = "\(GoldenDumpTests.directory)/\(group.file)"
        let file = try H5File.openForReading(path)
        let expected = "/expected/\(group.name)"
        let attrs = H5Attributes(
            owner: try file.site.own(
                H5Gopen2(file.handle.id, expected, h5_default()), expected, "open", closer: H5Gclose),
            site: file.site, objectPath: expected)
        let mode = try #require(try attrs.string("kv_mode"))
        let (selector, merge) = try #require(Self.modes[mode])
        let method = try Method.resolve(
            MethodOptions(
                selector: selector, merge: merge, variant: .reference,
                budget: BudgetOptions(
                    hhRatio: try attrs.double("hh_ratio"), recentRatio: try attrs.double("recent_ratio"))
            ))
        let dir = TemporaryDirectory()
        _ = try Compressor.run(
            input: try InputFile(path), destination: .file(dir.file("cache.h5")), force: false,
            method: method, codec: .none, threads: 2)
        let cache = try CacheReader(path: dir.file("cache.h5"))
        for i in 0..<cache.shape.numLayers {
            let layer = try cache.layer(i)
            for name in ["key", "value"] {
                let want = try TensorReader(try file.openDataset("\(expected)/layers/\(i)/\(name)"))
                #expect(layer.kept[0] == want.rows, "layer \(i) \(name): kept \(layer.kept), expected \(want.rows)")
                guard layer.kept.allSatisfy({ $0 == want.rows }) else { continue }
                for h in 0..<cache.shape.numKVHeads {
                    let a = try name == "key" ? layer.keys(head: h) : layer.values(head: h)
                    let b = try want.read(head: h)
                    var worst: Float = 0
                    var at = 0
                    for j in a.indices where abs(a[j] - b[j]) > worst {
                        worst = abs(a[j] - b[j])
                        at = j
                    }
                    #expect(
                        worst <= 1e-4, "layer \(i) \(name) head \(h): slot \(at / cache.shape.headDim) off by \(worst)")
                }
            }
        }
    }
}

/// Names of a group's members (tests only).
enum H5Names {
    static func children(of file: H5File, _ group: String) -> [String] {
        var names: [String] = []
        let g = H5Gopen2(file.handle.id, group, h5_default())
        guard g >= 0 else { return [] }
        defer { H5Gclose(g) }
        withUnsafeMutablePointer(to: &names) { ptr in
            var idx: hsize_t = 0
            _ = H5Literate(
                g, H5_INDEX_NAME, H5_ITER_INC, &idx,
                { _, name, _, data in
                    if let name, let data {
                        data.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                    }
                    return 0
                }, ptr)
        }
        return names.sorted()
    }
}
