// SPDX-License-Identifier: Apache-2.0
// Measures as data: compiling the alignment package's Measures, evaluating them per patient with
// FHIRPath, aggregating and writing the equity MeasureReport (measure.h).
#include "gateway/measure/measure.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "gateway/measure/measure_internal.h"
#include "gateway_paths.h"

namespace fhir::gateway::measure {
namespace {

constexpr std::string_view kBasis = "https://fhir.alignment-gateway.org/StructureDefinition/measure-population-basis";
constexpr std::string_view kAggregate = "https://fhir.alignment-gateway.org/StructureDefinition/measure-aggregate-method";
constexpr std::string_view kProfile = "https://fhir.alignment-gateway.org/StructureDefinition/equity-measurereport";
constexpr std::string_view kAbsent = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

std::string extensionCode(const json::Value& element, std::string_view url) {
  const json::Value* extensions = json::find(element, "extension");
  if (!extensions || !extensions->IsArray()) return "";
  for (const auto& extension : extensions->GetArray()) {
    if (json::getString(extension, "url") != std::optional<std::string_view>(url)) continue;
    for (const char* key : {"valueCode", "valueString"}) {
      if (auto value = json::getString(extension, key)) return std::string(*value);
    }
  }
  return "";
}

std::string firstCode(const json::Value* codeable) {
  if (!codeable) return "";
  const json::Value* codings = json::find(*codeable, "coding");
  if (!codings || !codings->IsArray() || codings->Empty()) return "";
  return std::string(json::getString((*codings)[0], "code").value_or(""));
}

std::string firstSystem(const json::Value* codeable) {
  if (!codeable) return "";
  const json::Value* codings = json::find(*codeable, "coding");
  if (!codings || !codings->IsArray() || codings->Empty()) return "";
  return std::string(json::getString((*codings)[0], "system").value_or(""));
}

Result<fhirpath::ExpressionPtr> criteria(const json::Value& element, const std::string& where, std::string& text,
                                         std::set<std::string>& variables) {
  const json::Value* expression = json::find(element, "criteria");
  if (!expression) return Error{where + ": no criteria"};
  if (json::getString(*expression, "language") != std::optional<std::string_view>("text/fhirpath")) {
    return Error{where + ".criteria.language must be text/fhirpath"};
  }
  auto source = json::getString(*expression, "expression");
  if (!source) return Error{where + ".criteria has no expression"};
  text = std::string(*source);
  fhirpath::CompileError detail;
  auto compiled = fhirpath::compile(text, &detail);
  if (!compiled.ok()) return Error{where + ".criteria.expression: " + compiled.message()};
  static const std::regex kVariable("%([A-Za-z][A-Za-z0-9]*)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kVariable); it != std::sregex_iterator(); ++it) {
    variables.insert((*it)[1].str());
  }
  return *compiled;
}

Result<std::unique_ptr<CompiledMeasure>> compileMeasure(const json::Value& root, const std::string& file) {
  auto measure = std::make_unique<CompiledMeasure>();
  measure->id = std::string(json::getString(root, "id").value_or(""));
  measure->url = std::string(json::getString(root, "url").value_or(""));
  if (measure->id.empty() || measure->url.empty()) return Error{file + ": a Measure needs id and url"};
  if (std::string basis = extensionCode(root, kBasis); !basis.empty()) measure->basis = basis;
  if (const json::Value* notation = json::find(root, "improvementNotation")) measure->improvement_json = json::serialize(*notation);
  const json::Value* groups = json::find(root, "group");
  if (!groups || !groups->IsArray() || groups->Empty()) return Error{file + ": Measure.group is required"};
  for (rapidjson::SizeType g = 0; g < groups->Size(); ++g) {
    const json::Value& group = (*groups)[g];
    const std::string where = file + ": Measure.group[" + std::to_string(g) + "]";
    CompiledGroup compiled;
    compiled.id = std::string(json::getString(group, "id").value_or(""));
    if (const json::Value* code = json::find(group, "code")) compiled.code_json = json::serialize(*code);
    compiled.aggregate = extensionCode(group, kAggregate);
    compiled.basis = extensionCode(group, kBasis);
    if (compiled.basis.empty()) compiled.basis = measure->basis;
    static const std::set<std::string> kAggregates = {"count", "proportion", "median", "p90"};
    if (!kAggregates.count(compiled.aggregate)) return Error{where + ": measure-aggregate-method must be count, proportion, median or p90"};
    const json::Value* populations = json::find(group, "population");
    if (!populations || !populations->IsArray()) return Error{where + ".population is required"};
    for (rapidjson::SizeType p = 0; p < populations->Size(); ++p) {
      const json::Value& population = (*populations)[p];
      CompiledPopulation one;
      one.code = firstCode(json::find(population, "code"));
      const std::string at = where + ".population[" + std::to_string(p) + "]";
      if (one.code.empty()) return Error{at + ".code is required"};
      auto expression = criteria(population, at, one.expression_text, measure->variables);
      if (!expression.ok()) return expression.error();
      one.expression = *expression;
      compiled.populations.push_back(std::move(one));
    }
    auto has = [&](const char* code) {
      return std::any_of(compiled.populations.begin(), compiled.populations.end(), [&](const auto& p) { return p.code == code; });
    };
    if (compiled.aggregate == "proportion" && (!has("numerator") || !has("denominator"))) {
      return Error{where + ": a proportion needs a numerator and a denominator"};
    }
    if ((compiled.aggregate == "median" || compiled.aggregate == "p90") && (!has("measure-population") || !has("measure-observation"))) {
      return Error{where + ": a " + compiled.aggregate + " needs a measure-population and a measure-observation"};
    }
    const json::Value* stratifiers = json::find(group, "stratifier");
    if (stratifiers && stratifiers->IsArray()) {
      for (rapidjson::SizeType s = 0; s < stratifiers->Size(); ++s) {
        CompiledStratifier one;
        one.code = firstCode(json::find((*stratifiers)[s], "code"));
        const std::string at = where + ".stratifier[" + std::to_string(s) + "]";
        one.system = firstSystem(json::find((*stratifiers)[s], "code"));
        if (one.code.empty() || one.system.empty()) return Error{at + ".code needs a coding with system and code"};
        auto expression = criteria((*stratifiers)[s], at, one.expression_text, measure->variables);
        if (!expression.ok()) return expression.error();
        one.expression = *expression;
        compiled.stratifiers.push_back(std::move(one));
      }
    }
    measure->groups.push_back(std::move(compiled));
  }
  return measure;
}

// Seconds since the epoch of a FHIR dateTime (a date counts as its midnight UTC); nullopt when unreadable.
std::optional<double> epochSeconds(std::string text) {
  if (!text.empty() && text[0] == '@') text.erase(0, 1);
  int year = 0, month = 1, day = 1, hour = 0, minute = 0;
  double second = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d", &year, &month, &day) != 3) return std::nullopt;
  int offset = 0;
  if (text.size() > 10 && text[10] == 'T') {
    if (std::sscanf(text.c_str() + 11, "%2d:%2d", &hour, &minute) != 2) return std::nullopt;
    size_t at = 16;
    if (text.size() > at && text[at] == ':') {
      second = std::atof(text.c_str() + at + 1);
      at += 3;
      while (at < text.size() && (std::isdigit(static_cast<unsigned char>(text[at])) || text[at] == '.')) ++at;
    }
    if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
      int oh = 0, om = 0;
      std::sscanf(text.c_str() + at + 1, "%2d:%2d", &oh, &om);
      offset = (text[at] == '-' ? -1 : 1) * (oh * 60 + om);
    }
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  return static_cast<double>(timegm(&tm)) + second - offset * 60.0;
}

// Per cell (the group, or one stratum): the population counts and the observations.
struct Cell {
  std::map<std::string, int64_t> counts;
  std::map<std::string, std::vector<std::string>> subjects;  // subject-list: references per population
  std::vector<double> observations;
};

std::string quote(std::string_view text) {
  std::string out = "\"";
  json::appendEscaped(text, out);
  return out + "\"";
}

std::string decimal(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.4f", value);
  std::string text = buffer;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

double percentile(std::vector<double> values, const std::string& method) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  if (method == "median") return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
  size_t rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n)));  // nearest rank
  return values[std::max<size_t>(rank, 1) - 1];
}

}  // namespace

MeasureLibrary::~MeasureLibrary() = default;

const std::string& measureUrl(const CompiledMeasure& measure) { return measure.url; }

Result<std::shared_ptr<const MeasureLibrary>> MeasureLibrary::load(const std::string& package_dir) {
  std::shared_ptr<MeasureLibrary> library(new MeasureLibrary());
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(package_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("Measure-", 0) != 0 || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    json::Document doc;
    json::ParseError parse_error;
    if (!json::parse(text.str(), doc, parse_error)) return Error{name + ": not JSON"};
    auto compiled = compileMeasure(doc, name);
    if (!compiled.ok()) return compiled.error();
    library->measures_[(*compiled)->id] = std::move(*compiled);
  }
  if (error) return Error{"cannot read " + package_dir + ": " + error.message()};
  return std::shared_ptr<const MeasureLibrary>(library);
}

Result<std::shared_ptr<const MeasureLibrary>> MeasureLibrary::bundled() {
  static std::once_flag once;
  static Result<std::shared_ptr<const MeasureLibrary>> loaded = Error{"not loaded"};
  std::call_once(once, [] { loaded = load(std::string(GATEWAY_PROFILES_DIR) + "/alignment/package"); });
  return loaded;
}

const CompiledMeasure* MeasureLibrary::find(const std::string& id) const {
  auto found = measures_.find(id);
  return found == measures_.end() ? nullptr : found->second.get();
}

std::vector<std::string> MeasureLibrary::ids() const {
  std::vector<std::string> out;
  for (const auto& [id, measure] : measures_) out.push_back(id);
  return out;
}

namespace {

struct GroupCells {
  Cell total;
  std::vector<std::map<std::string, Cell>> strata;  // per stratifier: value -> cell
};
using MeasureCells = std::vector<GroupCells>;

MeasureCells emptyCells(const CompiledMeasure& measure) {
  MeasureCells cells(measure.groups.size());
  for (size_t g = 0; g < measure.groups.size(); ++g) cells[g].strata.resize(measure.groups[g].stratifiers.size());
  return cells;
}

void addCell(Cell& into, const Cell& from) {
  for (const auto& [code, count] : from.counts) into.counts[code] += count;
  for (const auto& [code, list] : from.subjects) into.subjects[code].insert(into.subjects[code].end(), list.begin(), list.end());
  into.observations.insert(into.observations.end(), from.observations.begin(), from.observations.end());
}

void addCells(MeasureCells& into, const MeasureCells& from) {
  for (size_t g = 0; g < into.size(); ++g) {
    addCell(into[g].total, from[g].total);
    for (size_t s = 0; s < into[g].strata.size(); ++s) {
      for (const auto& [value, cell] : from[g].strata[s]) addCell(into[g].strata[s][value], cell);
    }
  }
}

// The stratum values of `focus` for one stratifier (distinct primitives; none: UNK).
Result<std::set<std::string>> stratumValues(const CompiledMeasure& measure, const CompiledStratifier& stratifier, const fhirpath::Item& focus,
                                            const fhirpath::EvaluationContext& context) {
  auto values = fhirpath::evaluate(*stratifier.expression, focus, context);
  if (!values.ok()) return Error{"exception: Measure/" + measure.id + " stratifier " + stratifier.code + ": " + values.message()};
  std::set<std::string> distinct;
  for (const fhirpath::Item& value : *values) {
    if (auto text = value.primitiveText()) distinct.insert(*text);
  }
  if (distinct.empty()) distinct.insert("UNK");
  return distinct;
}

std::string itemReference(const fhirpath::Item& item) {
  if (item.kind() != fhirpath::Item::Kind::kNode || !item.value() || !item.value()->IsObject()) return "";
  return std::string(json::getString(*item.value(), "resourceType").value_or("")) + "/" +
         std::string(json::getString(*item.value(), "id").value_or(""));
}

// One patient's part of every group of `measure`, added to `cells`.
Status evaluatePatient(const CompiledMeasure& measure, const PatientData& patient, const fhirpath::EvaluationContext& context,
                       bool subject_list, MeasureCells& cells) {
  const fhirpath::Item focus = patient.patient ? fhirpath::Item::node(patient.patient, "") : fhirpath::Item::boolean(true);
  for (size_t g = 0; g < measure.groups.size(); ++g) {
    const CompiledGroup& group = measure.groups[g];
    const bool resource_basis = group.basis != "boolean";
    // Per patient (boolean basis): one cell. Per item (resource basis): a cell per item, keyed by
    // the item's JSON (items of several populations are the same resource).
    Cell mine;
    std::vector<std::pair<fhirpath::Item, Cell>> items;
    auto itemCell = [&](const fhirpath::Item& item) -> Cell& {
      const json::Value* key = item.kind() == fhirpath::Item::Kind::kNode ? item.value() : nullptr;
      if (key != nullptr) {
        for (auto& [existing, cell] : items) {
          if (existing.kind() == fhirpath::Item::Kind::kNode && existing.value() == key) return cell;
        }
      }
      items.emplace_back(item, Cell{});
      return items.back().second;
    };
    fhirpath::Collection measure_population;
    for (const CompiledPopulation& population_def : group.populations) {
      if (population_def.code == "measure-observation") continue;
      auto result = fhirpath::evaluate(*population_def.expression, focus, context);
      if (!result.ok()) {
        return Error{"exception: Measure/" + measure.id + " " + population_def.code + " for Patient/" + patient.id + ": " + result.message()};
      }
      if (!resource_basis) {
        const bool in = result->size() == 1 && result->front().kind() == fhirpath::Item::Kind::kBoolean && result->front().booleanValue();
        mine.counts[population_def.code] += in ? 1 : 0;
        if (in && subject_list) mine.subjects[population_def.code].push_back("Patient/" + patient.id);
      } else {
        for (const fhirpath::Item& item : *result) {
          Cell& cell = itemCell(item);
          cell.counts[population_def.code] += 1;
          if (subject_list) {
            if (std::string reference = itemReference(item); !reference.empty()) cell.subjects[population_def.code].push_back(reference);
          }
        }
      }
      if (population_def.code == "measure-population") measure_population = std::move(*result);
    }
    for (const CompiledPopulation& population_def : group.populations) {
      if (population_def.code != "measure-observation") continue;
      for (const fhirpath::Item& item : measure_population) {
        auto result = fhirpath::evaluate(*population_def.expression, item, context);
        if (!result.ok()) return Error{"exception: Measure/" + measure.id + " measure-observation: " + result.message()};
        if (result->size() != 2) continue;  // no end yet: not observed
        auto from = epochSeconds(fhirpath::toLiteral(result->front()));
        auto to = epochSeconds(fhirpath::toLiteral(result->back()));
        if (!from || !to) continue;
        Cell& cell = resource_basis ? itemCell(item) : mine;
        cell.observations.push_back((*to - *from) / 3600.0);
        cell.counts["measure-observation"] += 1;
      }
    }
    if (!resource_basis) {
      addCell(cells[g].total, mine);
      for (size_t s = 0; s < group.stratifiers.size(); ++s) {
        auto values = stratumValues(measure, group.stratifiers[s], focus, context);
        if (!values.ok()) return values.error();
        for (const std::string& value : *values) addCell(cells[g].strata[s][value], mine);
      }
      continue;
    }
    for (const auto& [item, cell] : items) {
      addCell(cells[g].total, cell);
      for (size_t s = 0; s < group.stratifiers.size(); ++s) {
        auto values = stratumValues(measure, group.stratifiers[s], item, context);
        if (!values.ok()) return values.error();
        for (const std::string& value : *values) addCell(cells[g].strata[s][value], cell);
      }
    }
  }
  return Status::Ok();
}

fhirpath::Collection nodes(const std::vector<const json::Value*>& resources) {
  fhirpath::Collection out;
  for (const json::Value* resource : resources) out.push_back(fhirpath::Item::node(resource, ""));
  return out;
}

// Patients [from, to) of the population, for every measure.
Status evaluateRange(const std::vector<const CompiledMeasure*>& measures, const Population& population, size_t from, size_t to,
                     const EvaluateParams& params, std::vector<MeasureCells>& cells) {
  const fhirpath::ModelPtr model = fhirpath::Model::bundled();
  const bool subject_list = params.report_type == "subject-list";
  for (size_t i = from; i < to; ++i) {
    const PatientData& patient = population.patients[i];
    fhirpath::EvaluationContext context;
    context.model = model;
    context.resource = patient.patient;
    context.variables = {
        {"patient", patient.patient ? fhirpath::Collection{fhirpath::Item::node(patient.patient, "")} : fhirpath::Collection{}},
        {"memberships", nodes(patient.memberships)}, {"coverages", nodes(patient.coverages)},
        {"consults", nodes(patient.consults)}, {"referrals", nodes(patient.referrals)},
        {"communications", nodes(patient.communications)}, {"tasks", nodes(patient.tasks)},
        {"observations", nodes(patient.observations)}, {"carePlans", nodes(patient.care_plans)},
        {"claims", nodes(patient.claims)}, {"unroutable", nodes(patient.unroutable)}, {"episodes", nodes(patient.episodes)},
        {"riskAssessments", nodes(patient.risk_assessments)},
        {"periodStart", {fhirpath::Item::string(params.period_start)}},
        {"periodEnd", {fhirpath::Item::string(params.period_end)}}};
    for (size_t m = 0; m < measures.size(); ++m) {
      if (Status status = evaluatePatient(*measures[m], patient, context, subject_list, cells[m]); !status.ok()) return status;
    }
  }
  return Status::Ok();
}

Status checkParams(const EvaluateParams& params) {
  static const std::regex kDate(R"(\d{4}-\d{2}-\d{2})");
  if (!std::regex_match(params.period_start, kDate) || !std::regex_match(params.period_end, kDate)) {
    return Error{"invalid: periodStart and periodEnd are dates YYYY-MM-DD"};
  }
  if (params.period_end < params.period_start) return Error{"invalid: periodEnd is before periodStart"};
  const std::string& report_type = params.report_type;
  if (report_type != "subject" && report_type != "subject-list" && report_type != "population") {
    return Error{"invalid: reportType must be subject, subject-list or population"};
  }
  if (report_type == "subject" && params.subject.rfind("Patient/", 0) != 0) {
    return Error{"invalid: reportType subject needs a Patient subject"};
  }
  return Status::Ok();
}

std::string writeReport(const CompiledMeasure& measure, const EvaluateParams& params, const Population& population,
                        const MeasureCells& cells) {
  const std::string& report_type = params.report_type;
  const bool summary = report_type == "population";
  std::string contained;
  int list_number = 0;
  auto cellJson = [&](const CompiledGroup& group, const Cell& cell) {
    bool suppressed = false;
    if (summary) {
      for (const auto& population_def : group.populations) {
        auto found = cell.counts.find(population_def.code);
        const int64_t count = found == cell.counts.end() ? 0 : found->second;
        if (count > 0 && count < params.suppress_below) suppressed = true;
      }
    }
    std::string out = R"("population":[)";
    bool first = true;
    for (const auto& population_def : group.populations) {
      auto found = cell.counts.find(population_def.code);
      const int64_t count = found == cell.counts.end() ? 0 : found->second;
      if (!first) out += ',';
      first = false;
      out += R"({"code":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/measure-population","code":)" +
             quote(population_def.code) + "}]}";
      if (suppressed) {
        out += R"(,"extension":[{"url":")" + std::string(kAbsent) + R"(","valueCode":"masked"}])";
      } else {
        out += R"(,"count":)" + std::to_string(count);
      }
      if (report_type == "subject-list" && population_def.code != "measure-observation") {
        const std::string id = "list-" + std::to_string(++list_number);
        std::string list = R"({"resourceType":"List","id":")" + id + R"(","status":"current","mode":"snapshot","entry":[)";
        auto subjects = cell.subjects.find(population_def.code);
        if (subjects != cell.subjects.end()) {
          for (size_t i = 0; i < subjects->second.size(); ++i) {
            list += (i ? "," : "") + std::string(R"({"item":{"reference":)") + quote(subjects->second[i]) + "}}";
          }
        }
        list += "]}";
        contained += (contained.empty() ? "" : ",") + list;
        out += R"(,"subjectResults":{"reference":"#)" + id + "\"}";
      }
      out += '}';
    }
    out += ']';
    if (suppressed) return out;
    if (group.aggregate == "proportion") {
      const int64_t denominator = cell.counts.count("denominator") ? cell.counts.at("denominator") : 0;
      const int64_t exclusions = cell.counts.count("denominator-exclusion") ? cell.counts.at("denominator-exclusion") : 0;
      const int64_t numerator = cell.counts.count("numerator") ? cell.counts.at("numerator") : 0;
      if (denominator - exclusions > 0) {
        out += R"(,"measureScore":{"value":)" + decimal(static_cast<double>(numerator) / static_cast<double>(denominator - exclusions)) + "}";
      }
    } else if ((group.aggregate == "median" || group.aggregate == "p90") && !cell.observations.empty()) {
      out += R"(,"measureScore":{"value":)" + decimal(percentile(cell.observations, group.aggregate)) +
             R"(,"unit":"h","system":"http://unitsofmeasure.org","code":"h"})";
    }
    return out;
  };
  std::string groups_json;
  for (size_t g = 0; g < measure.groups.size(); ++g) {
    const CompiledGroup& group = measure.groups[g];
    std::string one = "{";
    if (!group.id.empty()) one += R"("id":)" + quote(group.id) + ",";
    if (!group.code_json.empty()) one += R"("code":)" + group.code_json + ",";
    one += cellJson(group, cells[g].total);
    one += R"(,"stratifier":[)";
    for (size_t s = 0; s < group.stratifiers.size(); ++s) {
      if (s) one += ',';
      one += R"({"code":[{"coding":[{"system":)" + quote(group.stratifiers[s].system) + R"(,"code":)" + quote(group.stratifiers[s].code) +
             "}]}]";
      one += R"(,"stratum":[)";
      bool first = true;
      for (const auto& [value, cell] : cells[g].strata[s]) {
        if (!first) one += ',';
        first = false;
        one += R"({"value":{"text":)" + quote(value) + "}," + cellJson(group, cell) + "}";
      }
      one += "]}";
    }
    one += "]}";
    groups_json += (g ? "," : "") + one;
  }
  std::string report = R"({"resourceType":"MeasureReport","meta":{"profile":[")" + std::string(kProfile) + R"("]})";
  if (!contained.empty()) report += R"(,"contained":[)" + contained + "]";
  report += R"(,"status":"complete","type":)" +
            quote(report_type == "subject" ? "individual" : report_type == "subject-list" ? "subject-list" : "summary");
  report += R"(,"measure":)" + quote(measure.url);
  // R4 MeasureReport.subject is a Patient, Group, ... but not an Organization: a practice's unified
  // report (over its attribution Groups of every payer) names the practice as the reporter only.
  if (!params.subject.empty() && params.subject.rfind("Organization/", 0) != 0) {
    report += R"(,"subject":{"reference":)" + quote(params.subject) + "}";
  }
  if (!params.now.empty()) report += R"(,"date":)" + quote(params.now);
  if (!population.reporter.empty()) report += R"(,"reporter":{"reference":)" + quote(population.reporter) + "}";
  report += R"(,"period":{"start":)" + quote(params.period_start) + R"(,"end":)" + quote(params.period_end) + "}";
  if (!measure.improvement_json.empty()) report += R"(,"improvementNotation":)" + measure.improvement_json;
  report += R"(,"group":[)" + groups_json + "]}";
  return report;
}

}  // namespace

Result<std::string> evaluate(const CompiledMeasure& measure, const EvaluateParams& params, const SearchAll& search) {
  auto reports = evaluateMany({&measure}, params, search, 0);
  if (!reports.ok()) return reports.error();
  return std::move(reports->front());
}

Result<std::vector<std::string>> evaluateMany(const std::vector<const CompiledMeasure*>& measures, const EvaluateParams& params,
                                              const SearchAll& search, unsigned threads) {
  if (Status status = checkParams(params); !status.ok()) return Error{status.message()};
  std::set<std::string> variables;
  for (const CompiledMeasure* measure : measures) variables.insert(measure->variables.begin(), measure->variables.end());
  auto population = loadPopulation(variables, params, search);
  if (!population.ok()) return population.error();

  // Patients in contiguous ranges, one per thread (a few hundred patients: one thread); the
  // ranges' cells are added in order, so subject lists keep the patients' order.
  const size_t n = population->patients.size();
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const size_t parts = std::max<size_t>(1, std::min<size_t>(threads, n / 500));
  std::vector<std::vector<MeasureCells>> cells(parts);
  std::vector<Status> statuses(parts, Status::Ok());
  auto run = [&](size_t part) {
    for (const CompiledMeasure* measure : measures) cells[part].push_back(emptyCells(*measure));
    statuses[part] = evaluateRange(measures, *population, n * part / parts, n * (part + 1) / parts, params, cells[part]);
  };
  std::vector<std::thread> workers;
  for (size_t part = 1; part < parts; ++part) workers.emplace_back(run, part);
  run(0);
  for (auto& worker : workers) worker.join();
  for (const Status& status : statuses) {
    if (!status.ok()) return Error{status.message()};
  }
  std::vector<std::string> reports;
  for (size_t m = 0; m < measures.size(); ++m) {
    for (size_t part = 1; part < parts; ++part) addCells(cells[0][m], cells[part][m]);
    reports.push_back(writeReport(*measures[m], params, *population, cells[0][m]));
  }
  return reports;
}

}  // namespace fhir::gateway::measure
