import CKernels
import Foundation
import Testing

@testable import LookM

@Suite struct ReportTests {
    @Test func massSharesSplitKeptMergedAndDropped() {
        // Positions 0..3; slot 0 holds position 0, slot 1 holds position 2; 1 merged into slot 0; 3 dropped.
        let head = CompressedHead(position: [0, 2], keys: [], values: [], merged: [1, 0], slotOf: [0, 0, 1, -1])
        let classes = Fidelity.rowClasses(head: head, modality: [.text, .image, .image, .text])
        let s = Fidelity.measure(scores: [0.5, 0.25, 0.125, 0.125], classes: classes, workspace: Workspace())
        #expect(s.recallKept == 0.625 && s.recallMerged == 0.25)
        #expect(s.recallText == 0.8 && s.recallImage == 1)
    }

    @Test func fullCacheHasNoErrorAndPerfectRecall() {
        let keys: [Float] = [1, 0, 0, 1, 1, 1]
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let head = CompressedHead(
            position: [0, 1, 2], keys: keys, values: values, merged: [0, 0, 0], slotOf: [0, 1, 2])
        let ws = Workspace()
        let f = keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                let full = Fidelity.Rows(keys: lookm_rows(k), values: lookm_rows(v), positions: [0, 1, 2])
                let same = Fidelity.Rows(keys: lookm_rows(k), values: lookm_rows(v), positions: [0, 1, 2])
                let reference = Fidelity.reference(
                    queries: [0.3, -0.2, 1, 1], positions: [Int.max, 1], full: full, headDim: 2, scale: 0.7,
                    workspace: ws)
                return Fidelity.measure(
                    queries: [0.3, -0.2, 1, 1], positions: [Int.max, 1], reference: reference, compressed: same,
                    headDim: 2,
                    scale: 0.7, classes: Fidelity.rowClasses(head: head, modality: [.text, .image, .image]),
                    workspace: ws)
            }
        }
        #expect(f.outputError == 0 && abs(f.outputCosine! - 1) < 1e-12 && f.recallKept == 1 && f.recallMerged == 0)
        #expect(f.recallText == 1 && f.recallImage == 1)
    }

    @Test func csvQuotesOnlyWhatItMust() {
        var t = TextTable(["method", "note"])
        t.add(["lookm", "plain"])
        t.add(["a,b", "say \"hi\""])
        #expect(t.csv == "method,note\nlookm,plain\n\"a,b\",\"say \"\"hi\"\"\"")
        #expect(t.text.split(separator: "\n").count == 3)
    }

    /// Well-formedness is checked from Python (ElementTree); here the structure and escaping.
    @Test func svgHasOneGroupPerSeriesAndEscapesText() throws {
        let plot = SVGPlot(
            title: "a < b & c", xLabel: "x", yLabel: "y",
            series: [
                .init(name: "lookm", points: [(0.1, 0.5), (0.2, 0.3)]),
                .init(name: "random", points: [(0.1, 0.9), (0.2, 0.8)]),
            ])
        #expect(plot.svg.components(separatedBy: #"<g class="series""#).count - 1 == 2)
        #expect(plot.svg.contains(#"data-name="lookm""#) && plot.svg.contains(#"data-name="random""#))
        #expect(plot.svg.contains("a &lt; b &amp; c"))
    }
}
