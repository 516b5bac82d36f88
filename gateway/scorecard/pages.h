// SPDX-License-Identifier: Apache-2.0
#pragma once

// The scorecard's HTML pages (issue 20, Build 5; docs/SCORECARD.md "The pages"): the convener's
// page, a practice's unified report and the data-quality page, rendered from MeasureReports
// ($evaluate-measure's answers) and the QualityReport. Self-contained: inline CSS and SVG, no
// script, no asset, no link that leaves the gateway; served with a Content-Security-Policy that
// forbids anything else (kContentSecurityPolicy).
// Every figure is an element with `data-measure`, `data-group`, `data-stratum` (a payer id, or
// empty for the whole cell), `data-population` (a population code, or `score`) and `data-value`
// (the number's text exactly as the MeasureReport has it, or `masked`); quality figures carry
// `data-quality` ("sources|<key>|accepted", "elements|<id>|quarantined", "feeds|<dest>|lagP50Ms",
// "unroutable", ...) and `data-value`: tests compare the page with the API through them.
// Each figure links to the request behind it.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conformance/common/html.h"
#include "conformance/json/json.h"
#include "gateway/scorecard/quality.h"

namespace fhir::gateway::scorecard {

inline constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

struct PageFilters {
  std::string payer;         // a configured payer id; empty: every payer
  std::string practice_npi;  // convener page: one practice; empty: the whole region
  std::string period_start;  // YYYY-MM-DD
  std::string period_end;
};

// When a page's figures were computed (the pages show figures computed in the background, see
// gateway/server/scorecard_routes.cc): a line under the title, `data-freshness` "current" or
// "stale".
struct Freshness {
  bool current = true;
  std::string as_of;    // the instant the computation started
  int64_t took_ms = 0;  // how long it took
};

// One measure's report for the page.
struct MeasureView {
  std::string id;
  std::string title;  // the Measure's title
  std::string link;   // the $evaluate-measure request (path and query) the report answers
  std::shared_ptr<const json::Document> report;
};

struct Practice {
  std::string npi;
  std::string name;
  std::string organization_id;
};

// GET /scorecard: filters, every measure for the filtered subject (the payer filter shows the
// payer stratum of each group), and the data-quality tables.
std::string convenerPage(const PageFilters& filters, const std::vector<std::string>& payers,
                         const std::vector<Practice>& practices, const std::vector<MeasureView>& measures,
                         const QualityReport& quality, const Freshness& freshness = {});
// GET /scorecard/practice/{npi}: the practice's unified report, every measure with each payer's
// stratum beside the total; printable.
std::string practicePage(const Practice& practice, const PageFilters& filters, const std::vector<std::string>& payers,
                         const std::vector<MeasureView>& measures, const Freshness& freshness = {});
// GET /scorecard/quality: the data-quality tables alone.
std::string qualityPage(const QualityReport& quality);

// An error as a small page (the pages answer HTML; the API's OperationOutcome goes to clients
// that ask for JSON).
std::string messagePage(const std::string& title, const std::string& message);

using fhir::htmlEscape;  // conformance/common/html.h
// Percent-encoding of a query parameter value.
std::string urlEncode(std::string_view text);

}  // namespace fhir::gateway::scorecard
