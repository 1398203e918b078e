import CHDF5
import Foundation
import Testing

@testable import LookM

/// Every violation of kv-format.md gets exit code 3 and a message naming the dataset or attribute.
@Suite struct DumpValidationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// Substrings the message must contain.
        let expect: [String]
        let kvHeads: Int?
        let edit: @Sendable (FileEditor) -> Void
        var testDescription: String { name }

        init(_ name: String, kvHeads: Int? = nil, expect: [String], _ edit: @escaping @Sendable (FileEditor) -> Void) {
            self.name = name
            self.expect = expect
            self.kvHeads = kvHeads
            self.edit = edit
        }
    }

    // The small dump: 2 layers, 4 heads, head_dim 16, 56 tokens (2 images of 16).
    static let cases: [Case] = [
        Case("wrong format", expect: ["attribute format", "lookm-kv-dump"]) {
            $0.setString("format", "something-else")
        },
        Case("missing format", expect: ["missing root attribute format"]) { $0.deleteAttribute("format") },
        Case("wrong version", expect: ["format_version = 2"]) { $0.setInt("format_version", 2) },
        Case("missing version", expect: ["format_version"]) { $0.deleteAttribute("format_version") },
        Case("missing num_layers", expect: ["num_layers"]) { $0.deleteAttribute("num_layers") },
        Case("string where an int belongs", expect: ["attribute head_dim", "expected an integer"]) {
            $0.setString("head_dim", "16")
        },
        Case("zero heads", expect: ["num_heads = 0"]) { $0.setInt("num_heads", 0) },
        Case("heads not a multiple of kv heads", expect: ["num_heads = 4", "num_kv_heads = 3"]) {
            $0.setInt("num_kv_heads", 3)
        },
        Case("missing layer", expect: ["/layers/1", "missing"]) { $0.delete("/layers/1") },
        Case("num_layers beyond the file", expect: ["/layers/2", "missing"]) { $0.setInt("num_layers", 3) },
        Case("missing key", expect: ["/layers/0/key", "missing"]) { $0.delete("/layers/0/key") },
        Case("missing modality", expect: ["/tokens/modality", "missing"]) { $0.delete("/tokens/modality") },
        Case("modality length", expect: ["/tokens/modality", "shape [55]", "seq_len"]) {
            $0.replace(
                "/tokens/modality", shape: [55], type: h5t_std_u8le(), memType: h5t_native_uint8(),
                values: [UInt8](repeating: 0, count: 55))
        },
        Case("unknown modality value", expect: ["/tokens/modality", "value 7 at position 3"]) {
            var m = [UInt8](repeating: 0, count: 56)
            m[3] = 7
            $0.replace("/tokens/modality", shape: [56], type: h5t_std_u8le(), memType: h5t_native_uint8(), values: m)
        },
        Case(
            "key seq_len disagrees", expect: ["/layers/1/key", "shape [4, 50, 16]", "num_kv_heads, seq_len, head_dim"]
        ) {
            $0.replace(
                "/layers/1/key", shape: [4, 50, 16], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 4 * 50 * 16))
        },
        Case("value head_dim disagrees", expect: ["/layers/0/value", "shape [4, 56, 8]"]) {
            $0.replace(
                "/layers/0/value", shape: [4, 56, 8], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 4 * 56 * 8))
        },
        Case("attn_score shape", expect: ["/layers/0/attn_score", "shape [4, 55]"]) {
            $0.replace(
                "/layers/0/attn_score", shape: [4, 55], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 4 * 55))
        },
        Case("query heads", expect: ["/layers/1/query", "shape [2, 56, 16]"]) {
            $0.replace(
                "/layers/1/query", shape: [2, 56, 16], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 2 * 56 * 16))
        },
        Case("integer key", expect: ["/layers/0/key", "unsupported element type (int32)"]) {
            $0.replace(
                "/layers/0/key", shape: [4, 56, 16], type: h5t_std_i32le(), memType: h5t_native_int32(),
                values: [Int32](repeating: 1, count: 4 * 56 * 16))
        },
        Case("float64 key", expect: ["/layers/0/key", "float64 is not supported"]) {
            $0.replace(
                "/layers/0/key", shape: [4, 56, 16], type: h5t_ieee_f64le(), memType: h5t_native_double(),
                values: [Double](repeating: 1, count: 4 * 56 * 16))
        },
        Case("uint16 key without the bfloat16 attribute", expect: ["/layers/0/key", "dtype = \"bfloat16\""]) {
            $0.replace(
                "/layers/0/key", shape: [4, 56, 16], type: h5t_std_u16le(), memType: h5t_native_uint16(),
                values: [UInt16](repeating: 0x3F80, count: 4 * 56 * 16))
        },
        Case("value type differs from key", expect: ["/layers/0/value", "differs from the key"]) {
            $0.replace(
                "/layers/0/value", shape: [4, 56, 16], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 4 * 56 * 16))
        },
        Case("layer type differs from layer 0", expect: ["/layers/1/key", "differs from layer 0"]) {
            $0.replace(
                "/layers/1/key", shape: [4, 56, 16], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 4 * 56 * 16))
            $0.replace(
                "/layers/1/value", shape: [4, 56, 16], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 4 * 56 * 16))
        },
        Case("NaN in a key", expect: ["/layers/1/key", "NaN at head 2, row 9, column 5"]) {
            $0.poke("/layers/1/key", at: [2, 9, 5], .nan)
        },
        Case("infinity in a value", expect: ["/layers/0/value", "infinity at head 0, row 55"]) {
            $0.poke("/layers/0/value", at: [0, 55, 0], .infinity)
        },
        Case("infinity in attn_score", expect: ["/layers/1/attn_score", "infinity at head 3, position 7"]) {
            $0.poke("/layers/1/attn_score", at: [3, 7], -.infinity)
        },
        Case("NaN in window_attn", expect: ["/layers/0/window_attn", "NaN"]) {
            $0.poke("/layers/0/window_attn", at: [1, 2, 3], .nan)
        },
        Case("unavailable filter", expect: ["/layers/0/attn_score", "filter id 32026", "not available"]) {
            $0.replace(
                "/layers/0/attn_score", shape: [4, 56], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 1, count: 4 * 56), filter: (32026, true))
        },
        Case("probe count disagrees", expect: ["/layers/0/probe_query", "shape [4, 3, 16]"]) {
            $0.replace(
                "/layers/0/probe_query", shape: [4, 3, 16], type: h5t_ieee_f32le(), memType: h5t_native_float(),
                values: [Float](repeating: 0, count: 4 * 3 * 16))
        },
        Case("attn_scale negative", expect: ["attn_scale"]) { e in
            e.deleteAttribute("attn_scale")
            e.setInt("attn_scale", -1)
        },
        Case("segment out of range", expect: ["/tokens/segment", "value -5"]) {
            $0.replace(
                "/tokens/segment", shape: [56], type: h5t_std_i32le(), memType: h5t_native_int32(),
                values: [Int32](repeating: -5, count: 56))
        },
    ]

    @Test(arguments: cases)
    func invalidDumpIsRejectedWithItsLocation(_ c: Case) throws {
        let dir = TemporaryDirectory()
        let path = try TestDumps.write(TestDumps.small(kvHeads: c.kvHeads), to: dir.file("dump.h5"))
        c.edit(FileEditor(path))
        do {
            _ = try Inspector.inspect(path: path)
            Issue.record("\(c.name): accepted")
        } catch let e as LookMError {
            #expect(e.kind == .invalidInput, "\(c.name): \(e.message)")
            #expect(e.message.hasPrefix(path), "\(c.name): \(e.message)")
            for s in c.expect { #expect(e.message.contains(s), "\(c.name): '\(s)' not in: \(e.message)") }
            #expect(!e.message.contains("\n"))
        }
    }

    @Test func validDumpPassesAndNotHDF5IsRejected() throws {
        let dir = TemporaryDirectory()
        let path = try TestDumps.write(TestDumps.small(), to: dir.file("dump.h5"))
        let report = try Inspector.inspect(path: path)
        #expect(report.kind == .dump && report.valid)

        let text = dir.file("notes.h5")
        try "just text\n".write(toFile: text, atomically: true, encoding: .utf8)
        #expect(throws: LookMError.invalid(text, nil, "not an HDF5 file (or not readable)")) {
            try Inspector.inspect(path: text)
        }
    }
}
