// SPDX-License-Identifier: Apache-2.0
#pragma once

// Quality measures as data (issue 20, docs/SCORECARD.md). A measure is a FHIR R4 `Measure` of the
// alignment package (fhir_profiles/alignment/package/Measure-*.json) whose population criteria
// and stratifiers are FHIRPath (`criteria.language` = `text/fhirpath`), evaluated once per
// patient of the subject with these variables:
//   %patient         the Patient (the survivor of its linked cluster)
//   %memberships     one Group per attribution membership of the patient whose period overlaps
//                    the measurement period (the practice's attribution Group with that member)
//   %coverages       the patient's Coverages whose period overlaps the measurement period
//   %consults        the patient's e-consult ServiceRequests; %communications, %tasks the
//                    patient's Communications and Tasks
//   %referrals       the patient's social-referral ServiceRequests
//   %observations, %carePlans, %claims, %episodes   the patient's Observations, CarePlans,
//                    Claims, EpisodesOfCare; %riskAssessments its RiskAssessments (all of them:
//                    criteria filter by date themselves)
//   %unroutable      the patient's Claims still waiting for a payer (routing state the store keeps
//                    beside the resources, GET /admin/unroutable: SearchAll's `$unroutable`)
//   %periodStart, %periodEnd   the period's dates as strings 'YYYY-MM-DD'
// No C++ per measure: what is counted and how it is aggregated is declared in the Measure:
//   * population basis: extension measure-population-basis (`boolean`, the default: the criteria is
//     true or false per patient; or a resource type: the criteria gives the items counted), on
//     the Measure or, for one group, on the group;
//   * aggregate per group: extension measure-aggregate-method on the group, `count` (no score),
//     `proportion` (numerator / denominator), `median` or `p90` (the measure-observation values
//     of the measure-population items; `p90` the 90th percentile by nearest rank);
//   * measure-observation: the criteria, evaluated with each measure-population item as its
//     focus, gives two dateTimes (start, end); the observation is end - start in hours.
// Strata: the group's stratifiers (the four equity-stratifier codes, and measure-stratifier ones)
// give the stratum values: per patient (focus the Patient) for a boolean basis, per counted item
// (focus and %context the item) for a resource basis; no value is the stratum `UNK`. Population
// reports suppress cells under 11 (docs/SCORECARD.md).

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"
#include "gateway/store/store.h"

namespace fhir::gateway::measure {

using SearchParams = std::vector<std::pair<std::string, std::string>>;
// Every stored resource of `type` matching `params` (the caller pages through Store::search and
// applies what the client may see), as JSON. `type` may also be kUnroutable: the claims waiting
// for a payer, each as {"claimId": ..., "patientId": ...}.
inline constexpr std::string_view kUnroutable = "$unroutable";
using SearchAll = std::function<Result<std::vector<std::string>>(const std::string& type, const SearchParams& params)>;

// Each stored resource of `type` matching `params` to `visit` (as JSON), a page of
// _count=1000 at a time: memory for one page, not for all of them. Stops at the first error of
// the store or of `visit`. `visible` as SearchRequest::visible (null: everything).
using Visible = std::function<Result<std::optional<std::string>>(std::string_view, std::string_view, const std::string&)>;
Status forEachStored(Store& store, const std::string& base_url, const std::string& type, const SearchParams& params,
                     const std::function<Status(std::string&& json)>& visit, const Visible& visible = {});

// SearchAll over `store` (forEachStored, collected); `visible` as there.
SearchAll storeSearch(Store& store, const std::string& base_url, Visible visible = {});

struct EvaluateParams {
  std::string period_start;  // YYYY-MM-DD (inclusive)
  std::string period_end;    // YYYY-MM-DD (inclusive)
  std::string subject;       // "Group/x", "Organization/x" (a practice), "Patient/x", or empty: everyone attributed
  std::string report_type = "population";  // subject | subject-list | population
  std::string now;                         // MeasureReport.date
  int64_t suppress_below = 11;             // population reports: counts 1..suppress_below-1 are suppressed
};

struct CompiledMeasure;

class MeasureLibrary {
 public:
  // The Measure-*.json files of `package_dir`; a measure whose FHIRPath does not compile, or
  // that declares what the evaluator does not know, is an error naming the file and element.
  static Result<std::shared_ptr<const MeasureLibrary>> load(const std::string& package_dir);
  // The alignment package's measures, loaded once per process.
  static Result<std::shared_ptr<const MeasureLibrary>> bundled();
  ~MeasureLibrary();

  const CompiledMeasure* find(const std::string& id) const;
  std::vector<std::string> ids() const;

 private:
  MeasureLibrary() = default;
  std::map<std::string, std::unique_ptr<CompiledMeasure>> measures_;
};

// The Measure's canonical url.
const std::string& measureUrl(const CompiledMeasure& measure);

// The practice NPI a subject names ("" for a Patient or no subject); for access checks.
Result<std::string> subjectPracticeNpi(const std::string& subject, const SearchAll& search);

// Evaluates the measure; the MeasureReport JSON. Errors: "not-found: ..." (no such measure or
// subject), "invalid: ..." (bad parameters), otherwise the store or the evaluation failed.
Result<std::string> evaluate(const CompiledMeasure& measure, const EvaluateParams& params, const SearchAll& search);

// Several measures over one read of the population (the union of what they need): their
// MeasureReports in the order given. Patients are evaluated on `threads` threads (0: one per core).
Result<std::vector<std::string>> evaluateMany(const std::vector<const CompiledMeasure*>& measures, const EvaluateParams& params,
                                              const SearchAll& search, unsigned threads = 0);

}  // namespace fhir::gateway::measure
