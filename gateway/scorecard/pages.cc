// SPDX-License-Identifier: Apache-2.0
#include "gateway/scorecard/pages.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <optional>

namespace fhir::gateway::scorecard {
namespace {

constexpr std::string_view kStyle = R"(<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:72em;color:#1d2733;padding:0 1em}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.4em 0 .4em;border-bottom:1px solid #c9d3de}
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{border:1px solid #d5dde6;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef2f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
a.fig{color:#154c8a;text-decoration:none;font-weight:600}a.fig:hover{text-decoration:underline}
.masked{color:#7a4d00;font-style:italic}.sub{color:#5a6876;font-size:.85em}
form.filters{display:flex;gap:1em;flex-wrap:wrap;align-items:end;background:#f5f7fa;padding:.6em;border:1px solid #d5dde6}
form.filters label{display:flex;flex-direction:column;font-size:.85em}
ul.fail{margin:0;padding-left:1.1em;font-size:.85em}.measure{page-break-inside:avoid;break-inside:avoid}
svg text{font:11px system-ui,sans-serif;fill:#1d2733}
@media print{form.filters,nav,.noprint{display:none}body{margin:0;max-width:none;font-size:11px}a.fig{color:#000}h2{page-break-after:avoid}}
</style>)";

constexpr std::string_view kPopulationNames[][2] = {
    {"initial-population", "Initial population"}, {"denominator", "Denominator"}, {"denominator-exclusion", "Excluded"},
    {"numerator", "Numerator"}, {"measure-population", "Measure population"}, {"measure-observation", "Observations"}};

std::string populationName(const std::string& code) {
  for (const auto& [known, name] : kPopulationNames) {
    if (code == known) return std::string(name);
  }
  return code;
}

std::string str(const json::Value* value) {
  return value != nullptr && json::isString(*value) ? std::string(json::stringView(*value)) : std::string();
}

// One cell of a report: a group or a stratum.
struct Cell {
  std::vector<std::pair<std::string, std::string>> populations;  // code, count text or "masked"
  std::string score;                                              // number text; empty: none
  std::string unit;
  bool masked() const {
    return std::any_of(populations.begin(), populations.end(), [](const auto& population) { return population.second == "masked"; });
  }
};

Cell cellOf(const json::Value& value) {
  Cell cell;
  if (const json::Value* populations = json::find(value, "population"); populations != nullptr && populations->IsArray()) {
    for (const auto& population : populations->GetArray()) {
      const json::Value* code = json::find(population, "code");
      const json::Value* coding = code != nullptr ? json::find(*code, "coding") : nullptr;
      const std::string name = coding != nullptr && coding->IsArray() && !coding->Empty() ? str(json::find((*coding)[0], "code")) : "";
      const json::Value* count = json::find(population, "count");
      cell.populations.emplace_back(name, count != nullptr && json::isNumber(*count) ? json::numberText(*count) : "masked");
    }
  }
  if (const json::Value* score = json::find(value, "measureScore")) {
    if (const json::Value* number = json::find(*score, "value"); number != nullptr && json::isNumber(*number)) cell.score = json::numberText(*number);
    cell.unit = str(json::find(*score, "unit"));
  }
  return cell;
}

enum class Kind { kCount, kProportion, kHours };

struct GroupView {
  std::string id;
  std::string title;
  Kind kind = Kind::kCount;
  Cell total;
  std::map<std::string, Cell> payers;  // the `payer` stratifier's strata
};

std::vector<GroupView> groupsOf(const json::Document& report) {
  std::vector<GroupView> out;
  const json::Value* groups = json::find(report, "group");
  if (groups == nullptr || !groups->IsArray()) return out;
  for (const auto& group : groups->GetArray()) {
    GroupView view;
    view.id = str(json::find(group, "id"));
    if (const json::Value* code = json::find(group, "code")) view.title = str(json::find(*code, "text"));
    if (view.title.empty()) view.title = view.id;
    view.total = cellOf(group);
    for (const auto& [code, value] : view.total.populations) {
      if (code == "numerator") view.kind = Kind::kProportion;
      if (code == "measure-observation") view.kind = Kind::kHours;
    }
    if (const json::Value* stratifiers = json::find(group, "stratifier"); stratifiers != nullptr && stratifiers->IsArray()) {
      for (const auto& stratifier : stratifiers->GetArray()) {
        const json::Value* codes = json::find(stratifier, "code");
        if (codes == nullptr || !codes->IsArray() || codes->Empty()) continue;
        const json::Value* coding = json::find((*codes)[0], "coding");
        if (coding == nullptr || !coding->IsArray() || coding->Empty() || str(json::find((*coding)[0], "code")) != "payer") continue;
        const json::Value* strata = json::find(stratifier, "stratum");
        if (strata == nullptr || !strata->IsArray()) continue;
        for (const auto& stratum : strata->GetArray()) {
          const json::Value* value = json::find(stratum, "value");
          view.payers[value != nullptr ? str(json::find(*value, "text")) : ""] = cellOf(stratum);
        }
      }
    }
    out.push_back(std::move(view));
  }
  return out;
}

std::string formatted(const std::string& text, Kind kind, bool score) {
  if (text == "masked") return "suppressed";
  if (!score) return text;
  char out[32];
  const double value = std::strtod(text.c_str(), nullptr);
  if (kind == Kind::kHours) {
    std::snprintf(out, sizeof out, "%.1f h", value);
  } else {
    std::snprintf(out, sizeof out, "%.1f %%", value * 100);
  }
  return out;
}

// The headline of a cell: its score (proportion, hours), or its first population's count.
std::pair<std::string, std::string> headline(const Cell& cell, Kind kind) {
  if (kind != Kind::kCount) return {"score", cell.score.empty() ? (cell.masked() ? "masked" : "none") : cell.score};
  if (cell.populations.empty()) return {"initial-population", "none"};
  return cell.populations.front();
}

std::string figure(const std::string& measure, const std::string& group, const std::string& stratum, const std::string& population,
                   const std::string& value, const std::string& display, const std::string& link) {
  std::string out = "<a class=\"fig";
  if (value == "masked") out += " masked";
  out += "\" href=\"" + htmlEscape(link) + "\" data-measure=\"" + htmlEscape(measure) + "\" data-group=\"" + htmlEscape(group) +
         "\" data-stratum=\"" + htmlEscape(stratum) + "\" data-population=\"" + htmlEscape(population) + "\" data-value=\"" +
         htmlEscape(value) + "\"";
  if (value == "masked") out += " title=\"fewer than 11: suppressed\"";
  return out + ">" + htmlEscape(display) + "</a>";
}

std::string headlineFigure(const std::string& measure, const GroupView& group, const std::string& stratum, const Cell* cell,
                           const std::string& link) {
  // No such stratum (e.g. a payer column of a group whose items have no payer, as claims still
  // waiting for one): shown as none, still linked to the report that says so.
  if (cell == nullptr) {
    return figure(measure, group.id, stratum, group.kind == Kind::kCount ? "initial-population" : "score", "none", "—", link);
  }
  auto [population, value] = headline(*cell, group.kind);
  const std::string display = value == "none" ? "—" : formatted(value, group.kind, population == "score");
  return figure(measure, group.id, stratum, population, value, display, link);
}

// Horizontal bars, one per payer stratum (suppressed ones outlined and labelled).
std::string barChart(const GroupView& group, const std::vector<std::string>& payers) {
  constexpr int kLabel = 170, kBar = 230, kRow = 20;
  struct Bar {
    std::string payer;
    std::string text;  // the headline's text, "masked" or "none"
    double value = 0;
  };
  double max = group.kind == Kind::kProportion ? 1.0 : 0.0;
  std::vector<Bar> bars;
  for (const std::string& payer : payers) {
    Bar bar{payer, "none", 0};
    if (auto found = group.payers.find(payer); found != group.payers.end()) bar.text = headline(found->second, group.kind).second;
    if (bar.text != "masked" && bar.text != "none") bar.value = std::strtod(bar.text.c_str(), nullptr);
    max = std::max(max, bar.value);
    bars.push_back(std::move(bar));
  }
  if (max <= 0) max = 1;
  const int height = static_cast<int>(bars.size()) * kRow + 4;
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"" + std::to_string(kLabel + kBar + 80) +
                    "\" height=\"" + std::to_string(height) + "\" aria-label=\"" + htmlEscape(group.title) + " by payer\">";
  int y = 2;
  for (const Bar& bar : bars) {
    out += "<text x=\"0\" y=\"" + std::to_string(y + 13) + "\">" + htmlEscape(bar.payer) + "</text>";
    if (bar.text != "masked" && bar.text != "none") {
      const int width = std::max(1, static_cast<int>(bar.value / max * kBar));
      out += "<rect x=\"" + std::to_string(kLabel) + "\" y=\"" + std::to_string(y + 2) + "\" width=\"" + std::to_string(width) +
             "\" height=\"14\" fill=\"#3a6ea5\"/>";
      out += "<text x=\"" + std::to_string(kLabel + width + 4) + "\" y=\"" + std::to_string(y + 13) + "\">" +
             htmlEscape(formatted(bar.text, group.kind, group.kind != Kind::kCount)) + "</text>";
    } else {
      out += "<rect x=\"" + std::to_string(kLabel) + "\" y=\"" + std::to_string(y + 2) + "\" width=\"" + std::to_string(kBar) +
             "\" height=\"14\" fill=\"none\" stroke=\"#b9c3cd\" stroke-dasharray=\"3 3\"/>";
      out += "<text x=\"" + std::to_string(kLabel + 6) + "\" y=\"" + std::to_string(y + 13) + "\">" +
             (bar.text == "masked" ? "suppressed (fewer than 11)" : "none") + "</text>";
    }
    y += kRow;
  }
  return out + "</svg>";
}

std::string pageStart(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><link rel=\"icon\" href=\"data:,\">"
         "<title>" + htmlEscape(title) + "</title>" + std::string(kStyle) + "</head><body>";
}

std::string periodText(const PageFilters& filters) { return filters.period_start + " to " + filters.period_end; }

std::string qualityFigure(const std::string& key, int64_t value, const std::string& link) {
  return "<a class=\"fig\" href=\"" + htmlEscape(link) + "\" data-quality=\"" + htmlEscape(key) + "\" data-value=\"" +
         std::to_string(value) + "\">" + std::to_string(value) + "</a>";
}

std::string qualityRows(const std::string& list, const std::vector<QualityRow>& rows) {
  std::string out = "<table><tr><th>" + std::string(list == "sources" ? "Source" : "Design element") +
                    "</th><th>Received</th><th>Accepted</th><th>Quarantined</th><th>Share quarantined</th><th>Top validation failures (profile, element, rule, count)</th></tr>";
  for (const QualityRow& row : rows) {
    const std::string prefix = list + "|" + row.key + "|";
    char share[32];
    std::snprintf(share, sizeof share, "%.1f %%", row.received() > 0 ? 100.0 * static_cast<double>(row.quarantined) / static_cast<double>(row.received()) : 0.0);
    out += "<tr><td>" + htmlEscape(row.title) + (list == "sources" ? " <span class=\"sub\">" + htmlEscape(row.kind) + "</span>" : "") + "</td>";
    out += "<td class=\"n\">" + qualityFigure(prefix + "received", row.received(), "/scorecard/quality?format=json") + "</td>";
    out += "<td class=\"n\">" + qualityFigure(prefix + "accepted", row.accepted,
                                              "/fhir/Provenance?_profile=https://fhir.alignment-gateway.org/StructureDefinition/mapping-provenance") + "</td>";
    out += "<td class=\"n\">" + qualityFigure(prefix + "quarantined", row.quarantined, "/admin/quarantine?status=quarantined") + "</td>";
    out += "<td class=\"n\">" + std::string(share) + "</td><td>";
    if (!row.failures.empty()) {
      out += "<ul class=\"fail\">";
      for (const FailureCount& failure : row.failures) {
        out += "<li>" + htmlEscape(failure.profile.empty() ? "(mapping)" : failure.profile) + " · <code>" + htmlEscape(failure.element) +
               "</code> · " + htmlEscape(failure.rule) + " · <b>" + std::to_string(failure.count) + "</b></li>";
      }
      out += "</ul>";
    }
    out += "</td></tr>";
  }
  return out + "</table>";
}

std::string qualitySection(const QualityReport& quality) {
  std::string out = "<h2 id=\"quality\">Data quality per source</h2>" + qualityRows("sources", quality.sources);
  out += "<h2>Data quality per design element</h2>" + qualityRows("elements", quality.elements);
  out += "<h2>Routing and feeds</h2><table><tr><th>Destination</th><th>Rows looked at</th><th>Delivered</th><th>Pending</th><th>Dead letters</th><th>Lag p50 (commit → 2xx)</th><th>Lag p99</th></tr>";
  for (const FeedLag& lag : quality.feeds) {
    const std::string prefix = "feeds|" + lag.destination + "|";
    out += "<tr><td>" + htmlEscape(lag.destination) + "</td><td class=\"n\">" + std::to_string(lag.rows) + "</td><td class=\"n\">" +
           qualityFigure(prefix + "delivered", lag.delivered, "/metrics") + "</td><td class=\"n\">" +
           qualityFigure(prefix + "pending", lag.pending, "/metrics") + "</td><td class=\"n\">" +
           qualityFigure(prefix + "dead", lag.dead, "/admin/dead-letters") + "</td>";
    for (const auto& [name, value] : {std::pair{"lagP50Ms", lag.p50_ms}, std::pair{"lagP99Ms", lag.p99_ms}}) {
      out += "<td class=\"n\">" + (value < 0 ? std::string("—") : qualityFigure(prefix + name, value, "/scorecard/quality?format=json") + " ms") + "</td>";
    }
    out += "</tr>";
  }
  if (quality.feeds.empty()) out += "<tr><td colspan=\"7\" class=\"sub\">nothing was delivered yet</td></tr>";
  out += "</table><table><tr><th>Unroutable claims</th><th>Patient conflicts</th><th>Routing conflicts</th></tr><tr>";
  out += "<td class=\"n\">" + qualityFigure("unroutable", quality.unroutable, "/admin/unroutable") + "</td>";
  out += "<td class=\"n\">" + qualityFigure("conflicts", quality.conflicts, "/admin/conflicts") + "</td>";
  out += "<td class=\"n\">" + qualityFigure("routingConflicts", quality.routing_conflicts, "/admin/routing-conflicts") + "</td></tr></table>";
  out += "<p class=\"sub\">Computed " + htmlEscape(quality.generated_at) +
         " from the store's records: the mapping Provenance of each accepted record, the quarantine, the outbox and its delivery attempts. "
         "The same figures as JSON: <a href=\"/scorecard/quality?format=json\">/scorecard/quality?format=json</a>.</p>";
  return out;
}

std::string freshnessLine(const Freshness& freshness) {
  if (freshness.as_of.empty()) return {};
  char took[32];
  std::snprintf(took, sizeof took, "%.1f s", static_cast<double>(freshness.took_ms) / 1000.0);
  if (freshness.current) {
    return "<p class=\"sub\" data-freshness=\"current\">Figures computed at " + htmlEscape(freshness.as_of) + " (in " + took +
           ") from the data as it is now.</p>";
  }
  return "<p class=\"sub stale\" data-freshness=\"stale\">Figures as of " + htmlEscape(freshness.as_of) +
         ": newer data has arrived since and is being evaluated (the last evaluation took " + took +
         "); reload the page for the new figures.</p>";
}

std::string option(const std::string& value, const std::string& label, const std::string& selected) {
  return "<option value=\"" + htmlEscape(value) + "\"" + (value == selected ? " selected" : "") + ">" + htmlEscape(label) + "</option>";
}

}  // namespace

std::string urlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string convenerPage(const PageFilters& filters, const std::vector<std::string>& payers, const std::vector<Practice>& practices,
                         const std::vector<MeasureView>& measures, const QualityReport& quality, const Freshness& freshness) {
  std::string out = pageStart("Regional scorecard");
  out += "<h1>Regional alignment scorecard</h1><p class=\"sub\">Period " + htmlEscape(periodText(filters));
  std::string subject = "the whole region";
  for (const Practice& practice : practices) {
    if (practice.npi == filters.practice_npi) subject = practice.name + " (NPI " + practice.npi + ")";
  }
  out += " · " + htmlEscape(subject) + " · " + htmlEscape(filters.payer.empty() ? std::string("every payer") : "payer " + filters.payer) + "</p>";
  out += freshnessLine(freshness);
  out += "<form class=\"filters\" method=\"get\" action=\"/scorecard\"><label>Payer<select name=\"payer\">" + option("", "every payer", filters.payer);
  for (const std::string& payer : payers) out += option(payer, payer, filters.payer);
  out += "</select></label><label>Practice<select name=\"practice\">" + option("", "the whole region", filters.practice_npi);
  for (const Practice& practice : practices) out += option(practice.npi, practice.name + " (" + practice.npi + ")", filters.practice_npi);
  out += "</select></label><label>From<input type=\"date\" name=\"periodStart\" value=\"" + htmlEscape(filters.period_start) +
         "\"></label><label>To<input type=\"date\" name=\"periodEnd\" value=\"" + htmlEscape(filters.period_end) +
         "\"></label><button type=\"submit\">Show</button></form>";
  if (!practices.empty()) {
    out += "<nav class=\"sub\">Unified practice reports: ";
    for (size_t i = 0; i < practices.size(); ++i) {
      out += (i ? " · " : "") + std::string("<a href=\"/scorecard/practice/") + urlEncode(practices[i].npi) + "?periodStart=" +
             urlEncode(filters.period_start) + "&amp;periodEnd=" + urlEncode(filters.period_end) + "\">" + htmlEscape(practices[i].name) + "</a>";
    }
    out += " · <a href=\"/scorecard/quality\">data quality</a></nav>";
  }
  for (const MeasureView& measure : measures) {
    out += "<section class=\"measure\"><h2>" + htmlEscape(measure.title) + "</h2><table><tr><th>Figure</th><th>Value" +
           (filters.payer.empty() ? std::string() : " (" + htmlEscape(filters.payer) + ")") + "</th><th>Populations</th><th>By payer</th></tr>";
    for (const GroupView& group : groupsOf(*measure.report)) {
      const Cell* cell = &group.total;
      if (!filters.payer.empty()) {
        auto found = group.payers.find(filters.payer);
        cell = found != group.payers.end() ? &found->second : nullptr;
      }
      out += "<tr><td>" + htmlEscape(group.title) + "</td><td class=\"n\">" + headlineFigure(measure.id, group, filters.payer, cell, measure.link) +
             "</td><td class=\"sub\">";
      if (cell != nullptr) {
        for (const auto& [code, value] : cell->populations) {
          out += htmlEscape(populationName(code)) + " " + figure(measure.id, group.id, filters.payer, code, value, formatted(value, group.kind, false), measure.link) + "<br>";
        }
      }
      out += "</td><td>" + barChart(group, payers) + "</td></tr>";
    }
    out += "</table><p class=\"sub\">Behind these figures: <a href=\"" + htmlEscape(measure.link) + "\"><code>GET " + htmlEscape(measure.link) +
           "</code></a>" + (filters.payer.empty() ? "" : " (the stratum <code>payer = " + htmlEscape(filters.payer) + "</code>)") + "</p></section>";
  }
  out += qualitySection(quality);
  out += "<p class=\"sub\">Cells with a count from 1 to 10 are suppressed (shown as suppressed, never as a number).</p></body></html>\n";
  return out;
}

std::string practicePage(const Practice& practice, const PageFilters& filters, const std::vector<std::string>& payers,
                         const std::vector<MeasureView>& measures, const Freshness& freshness) {
  std::string out = pageStart("Unified report: " + practice.name);
  out += "<h1>Unified quality report: " + htmlEscape(practice.name) + "</h1><p class=\"sub\">NPI " + htmlEscape(practice.npi) +
         " · period " + htmlEscape(periodText(filters)) + " · one report across every payer</p>";
  out += freshnessLine(freshness);
  out += "<form class=\"filters\" method=\"get\" action=\"/scorecard/practice/" + htmlEscape(urlEncode(practice.npi)) +
         "\"><label>From<input type=\"date\" name=\"periodStart\" value=\"" + htmlEscape(filters.period_start) +
         "\"></label><label>To<input type=\"date\" name=\"periodEnd\" value=\"" + htmlEscape(filters.period_end) +
         "\"></label><button type=\"submit\">Show</button></form>";
  for (const MeasureView& measure : measures) {
    out += "<section class=\"measure\"><h2>" + htmlEscape(measure.title) + "</h2><table><tr><th>Figure</th><th>All payers</th>";
    for (const std::string& payer : payers) out += "<th>" + htmlEscape(payer) + "</th>";
    out += "<th class=\"noprint\">By payer</th></tr>";
    for (const GroupView& group : groupsOf(*measure.report)) {
      out += "<tr><td>" + htmlEscape(group.title) + "</td><td class=\"n\">" + headlineFigure(measure.id, group, "", &group.total, measure.link);
      if (group.kind == Kind::kProportion && !group.total.masked()) {
        std::string numerator, denominator;
        for (const auto& [code, value] : group.total.populations) {
          if (code == "numerator") numerator = value;
          if (code == "denominator") denominator = value;
        }
        out += "<br><span class=\"sub\">" + figure(measure.id, group.id, "", "numerator", numerator, numerator, measure.link) + " of " +
               figure(measure.id, group.id, "", "denominator", denominator, denominator, measure.link) + "</span>";
      }
      out += "</td>";
      for (const std::string& payer : payers) {
        auto found = group.payers.find(payer);
        out += "<td class=\"n\">" + headlineFigure(measure.id, group, payer, found != group.payers.end() ? &found->second : nullptr, measure.link) + "</td>";
      }
      out += "<td class=\"noprint\">" + barChart(group, payers) + "</td></tr>";
    }
    out += "</table><p class=\"sub\">Behind these figures: <a href=\"" + htmlEscape(measure.link) + "\"><code>GET " + htmlEscape(measure.link) +
           "</code></a></p></section>";
  }
  out += "<p class=\"sub\">Cells with a count from 1 to 10 are suppressed (shown as suppressed, never as a number). "
         "Print this page from the browser for a paper copy.</p></body></html>\n";
  return out;
}

std::string qualityPage(const QualityReport& quality) {
  return pageStart("Data quality") + "<h1>Data quality</h1><nav class=\"sub\"><a href=\"/scorecard\">regional scorecard</a></nav>" +
         qualitySection(quality) + "</body></html>\n";
}

std::string messagePage(const std::string& title, const std::string& message) {
  return pageStart(title) + "<h1>" + htmlEscape(title) + "</h1><p>" + htmlEscape(message) + "</p></body></html>\n";
}

}  // namespace fhir::gateway::scorecard
