extension Report {
    /// Per layer: attention-output error and mass recall (both in [0, 1]).
    public var plot: SVGPlot {
        let rows = fidelity?.layers ?? []
        var series = [SVGPlot.Series(name: "mass recall", points: rows.map { (Double($0.layer), $0.recall) })]
        if rows.contains(where: { $0.outputError != nil }) {
            series.insert(
                SVGPlot.Series(
                    name: "output error", points: rows.compactMap { r in r.outputError.map { (Double(r.layer), $0) } }),
                at: 0)
        }
        if rows.isEmpty {
            series = [SVGPlot.Series(name: "saved %", points: layers.map { (Double($0.layer ?? 0), $0.savedPercent) })]
        }
        return SVGPlot(
            title: "\(cache): fidelity per layer", xLabel: "layer",
            yLabel: rows.isEmpty ? "memory saved (%)" : "error / recall", series: series)
    }
}
