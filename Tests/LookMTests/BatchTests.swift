import Foundation
import Testing

@testable import LookM

@Suite struct BatchTests {
    @Test(arguments: [1, 2, 3, 4, 7, 20])
    func shardsAreDisjointAndCoverTheManifest(n: Int) throws {
        let inputs = try BatchInputs(arguments: (0..<13).map { "/data/d\($0).h5" }, manifest: nil)
        var seen: [String] = []
        for i in 0..<n {
            let part = inputs.shard(try Shard(parsing: "\(i)/\(n)"))
            #expect(part.allSatisfy { $0.position % n == i })
            seen += part.map(\.dump)
        }
        #expect(seen.sorted() == inputs.items.map(\.dump).sorted())
        #expect(Set(seen).count == seen.count)
    }

    @Test(arguments: ["4/4", "-1/4", "0/0", "1", "a/b", "1/2/3", ""])
    func badShardsAreUsageErrors(text: String) {
        #expect(throws: LookMError.self) { try Shard(parsing: text) }
        do { _ = try Shard(parsing: text) } catch let e as LookMError { #expect(e.kind == .usage) } catch {
            Issue.record("\(error)")
        }
    }

    @Test func manifestSkipsCommentsAndResolvesAgainstItsFolder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lookm-batch-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let manifest = dir.appendingPathComponent("m.txt").path
        try "# comment\n\n  a.h5  \nsub/../b.h5\n/abs/c.h5\n   # indented comment\n".write(
            toFile: manifest, atomically: true, encoding: .utf8)
        let inputs = try BatchInputs(arguments: ["/x/first.h5"], manifest: manifest)
        #expect(inputs.items.map(\.dump) == ["/x/first.h5", dir.path + "/a.h5", dir.path + "/b.h5", "/abs/c.h5"])
        #expect(inputs.items.map(\.stem) == ["first", "a", "b", "c"])
        #expect(inputs.items.map(\.position) == [0, 1, 2, 3])
    }

    @Test func sameStemIsAUsageErrorNamingBoth() {
        do {
            _ = try BatchInputs(arguments: ["/a/d.h5", "/b/d.h5", "/c/e.h5"], manifest: nil)
            Issue.record("no error")
        } catch let e as LookMError {
            #expect(
                e.kind == .usage && e.message.contains("/a/d.h5") && e.message.contains("/b/d.h5")
                    && !e.message.contains("/c/e.h5"))
        } catch { Issue.record("\(error)") }
    }

    @Test func pathsAreNormalisedLexically() {
        #expect(Paths.absolute("x/./y/../z.h5", relativeTo: "/base") == "/base/x/z.h5")
        #expect(Paths.absolute("/a//b/", relativeTo: "/ignored") == "/a/b")
        #expect(Paths.absolute("../../../up.h5", relativeTo: "/one") == "/up.h5")
    }

    @Test func latestRecordWins() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lookm-collect-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Directories.make(dir + "/results")
        func record(_ status: BatchRecord.Status, _ time: String) -> BatchRecord {
            BatchRecord(
                command: "compress", dump: "/d/x.h5", output: dir + "/x.lookm.h5", status: status,
                error: status == .failed ? "boom" : nil,
                exitCode: status == .failed ? 3 : 0, seconds: 1, time: time, shard: "0/1", host: "h", pid: 1)
        }
        // The later record is in the earlier-sorting file: time decides, not file order.
        try (try record(.failed, "2026-12-02T10:00:00.000Z").line() + "\n").write(
            toFile: dir + "/results/0-of-1.h.2.jsonl", atomically: true, encoding: .utf8)
        try (try record(.skipped, "2026-12-02T09:00:00.000Z").line() + "\nnot json\n").write(
            toFile: dir + "/results/0-of-1.h.3.jsonl", atomically: true, encoding: .utf8)
        let c = try Collector.collect(outDir: dir, manifest: nil, kind: nil)
        #expect(c.records.map(\.status) == [.failed])
        #expect(c.problems.map(\.kind).sorted { $0.rawValue < $1.rawValue } == [.failed, .unreadable])
        #expect(!c.complete)
    }
}
