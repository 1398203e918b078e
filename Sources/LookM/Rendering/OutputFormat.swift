/// Output formats of `report` and `sweep` (docs/report.md).
public enum OutputFormat: String, CaseIterable, Sendable {
    case table, json, csv
}
