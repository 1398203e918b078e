import Foundation

/// A line chart as a standalone SVG a person can open in any browser: axes with ticks, axis
/// labels, a title, one coloured polyline with markers per series, and a legend. No external program.
public struct SVGPlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    static let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ]

    public var svg: String {
        let W = 720.0
        let H = 440.0
        let left = 70.0
        let right = 190.0
        let top = 40.0
        let bottom = 60.0
        let pw = W - left - right
        let ph = H - top - bottom
        let xs = series.flatMap { $0.points.map(\.x) }
        let ys = series.flatMap { $0.points.map(\.y) }
        let (x0, x1) = Self.range(xs)
        let (y0, y1) = Self.range(ys)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + ph - (y - y0) / (y1 - y0) * ph }
        var out = [
            #"<?xml version="1.0" encoding="UTF-8"?>"#,
            #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(W))" height="\#(Int(H))" viewBox="0 0 \#(Int(W)) \#(Int(H))" font-family="sans-serif" font-size="12">"#,
            #"<rect width="100%" height="100%" fill="white"/>"#,
            #"<text x="\#(left + pw / 2)" y="22" text-anchor="middle" font-size="15">\#(Self.escape(title))</text>"#,
            #"<g class="axes" stroke="black" fill="none"><line x1="\#(left)" y1="\#(top + ph)" x2="\#(left + pw)" y2="\#(top + ph)"/><line x1="\#(left)" y1="\#(top)" x2="\#(left)" y2="\#(top + ph)"/></g>"#,
        ]
        for i in 0...5 {
            let fx = x0 + (x1 - x0) * Double(i) / 5
            let fy = y0 + (y1 - y0) * Double(i) / 5
            out.append(
                #"<line x1="\#(px(fx))" y1="\#(top + ph)" x2="\#(px(fx))" y2="\#(top + ph + 5)" stroke="black"/><text x="\#(px(fx))" y="\#(top + ph + 18)" text-anchor="middle">\#(Self.tick(fx))</text>"#
            )
            out.append(
                #"<line x1="\#(left - 5)" y1="\#(py(fy))" x2="\#(left)" y2="\#(py(fy))" stroke="black"/><line x1="\#(left)" y1="\#(py(fy))" x2="\#(left + pw)" y2="\#(py(fy))" stroke="gainsboro"/><text x="\#(left - 8)" y="\#(py(fy) + 4)" text-anchor="end">\#(Self.tick(fy))</text>"#
            )
        }
        out.append(#"<text x="\#(left + pw / 2)" y="\#(H - 15)" text-anchor="middle">\#(Self.escape(xLabel))</text>"#)
        out.append(
            #"<text x="18" y="\#(top + ph / 2)" text-anchor="middle" transform="rotate(-90 18 \#(top + ph / 2))">\#(Self.escape(yLabel))</text>"#
        )
        for (i, s) in series.enumerated() {
            let colour = Self.colours[i % Self.colours.count]
            let pts = s.points.sorted { $0.x < $1.x }.map { "\(px($0.x)),\(py($0.y))" }.joined(separator: " ")
            out.append(
                #"<g class="series" data-name="\#(Self.escape(s.name))"><polyline points="\#(pts)" fill="none" stroke="\#(colour)" stroke-width="2"/>"#
                    + s.points.map { #"<circle cx="\#(px($0.x))" cy="\#(py($0.y))" r="3" fill="\#(colour)"/>"# }
                    .joined() + "</g>")
            let ly = top + 10 + Double(i) * 20
            out.append(
                #"<g class="legend"><line x1="\#(left + pw + 15)" y1="\#(ly)" x2="\#(left + pw + 40)" y2="\#(ly)" stroke="\#(colour)" stroke-width="2"/><text x="\#(left + pw + 46)" y="\#(ly + 4)">\#(Self.escape(s.name))</text></g>"#
            )
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    static func range(_ v: [Double]) -> (Double, Double) {
        guard let lo = v.min(), let hi = v.max() else { return (0, 1) }
        if hi - lo < 1e-12 { return (lo - 0.5, hi + 0.5) }
        let pad = (hi - lo) * 0.05
        return (lo - pad, hi + pad)
    }

    static func tick(_ v: Double) -> String {
        let a = abs(v)
        return Formatting.fixed(v, a >= 100 ? 0 : a >= 1 ? 2 : a >= 0.01 ? 3 : 5)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Writes the SVG (an output problem, exit 4, if it cannot).
    public func write(to output: TextOutput) throws {
        try output.write(svg)
    }
}
