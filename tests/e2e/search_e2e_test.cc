// SPDX-License-Identifier: Apache-2.0
// Search routes against the real binary (issue 15, contracts/query.md "Search"): GET
// /fhir/{type}?… and POST /fhir/{type}/_search answer a searchset Bundle with self/next links,
// paging through `next` reaches every match once, unknown parameters are 400 not-supported unless
// `Prefer: handling=lenient`, _summary=count, _elements with SUBSETTED.
#include <map>
#include <set>

#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_client.h"

namespace fhir::testing {
namespace {

std::string str(const json::Value& value, const char* key) { return std::string(json::getString(value, key).value_or("")); }
// Bundle.total (-1 when absent).
int64_t total(const json::Value& bundle) {
  const json::Value* value = json::find(bundle, "total");
  return value != nullptr && json::isNumber(*value) ? std::stoll(json::numberText(*value)) : -1;
}

class SearchEndToEnd : public GatewayFixture {
 protected:
  // The resources the three e-consult events wrote ("Type" -> ids), read from their answers.
  std::map<std::string, std::set<std::string>> ingest() {
    std::map<std::string, std::set<std::string>> written;
    for (const char* name : {"request", "response", "closed"}) {
      HttpResult result = gateway_->post("/ingest/econsult", event(name));
      EXPECT_EQ(result.status, 202) << name << ": " << result.body;
      json::Document bundle = parse(result.body);
      for (const json::Value& entry : bundle["entry"].GetArray()) {
        const json::Value& resource = entry["resource"];
        if (str(resource, "resourceType") == "OperationOutcome") continue;
        written[str(resource, "resourceType")].insert(str(resource, "id"));
      }
    }
    return written;
  }
  // The path (from /fhir) of a link URL of the gateway.
  std::string pathOf(const std::string& url) const {
    const size_t at = url.find("/fhir/");
    EXPECT_NE(at, std::string::npos) << url;
    return at == std::string::npos ? url : url.substr(at);
  }
  static std::string link(const json::Value& bundle, const std::string& relation) {
    for (const json::Value& one : bundle["link"].GetArray()) {
      if (str(one, "relation") == relation) return str(one, "url");
    }
    return {};
  }
};

TEST_F(SearchEndToEnd, PagesThroughNextLinksReachEveryMatchOnce) {
  startGateway();
  auto written = ingest();
  ASSERT_FALSE(written.empty());
  // The type with the most resources is paged one resource per page.
  std::string type;
  for (const auto& [name, ids] : written) {
    if (type.empty() || ids.size() > written[type].size()) type = name;
  }
  ASSERT_GE(written[type].size(), 2u) << type;
  std::string path = "/fhir/" + type + "?_count=1&_total=accurate";
  std::multiset<std::string> seen;
  int pages = 0;
  int64_t first_total = -1;
  while (!path.empty() && pages < 100) {
    HttpResult page = gateway_->get(path);
    ASSERT_EQ(page.status, 200) << path << ": " << page.body;
    EXPECT_EQ(page.content_type.rfind("application/fhir+json", 0), 0u);
    json::Document bundle = parse(page.body);
    EXPECT_EQ(str(bundle, "resourceType"), "Bundle");
    EXPECT_EQ(str(bundle, "type"), "searchset");
    if (pages == 0) first_total = total(bundle);
    EXPECT_EQ(total(bundle), first_total);
    EXPECT_EQ(pathOf(link(bundle, "self")).rfind("/fhir/" + type + "?", 0), 0u);
    for (const json::Value& entry : bundle["entry"].GetArray()) {
      EXPECT_EQ(str(entry["search"], "mode"), "match");
      const std::string id = str(entry["resource"], "id");
      EXPECT_NE(str(entry, "fullUrl").find("/fhir/" + type + "/" + id), std::string::npos);
      seen.insert(id);
    }
    ++pages;
    const std::string next = link(bundle, "next");
    path = next.empty() ? std::string() : pathOf(next);
  }
  const std::set<std::string> distinct(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), distinct.size());  // none twice
  EXPECT_EQ(static_cast<int64_t>(distinct.size()), first_total);
  EXPECT_EQ(pages, first_total);
  // Every resource the events' answers named is among them (merges may have written more, e.g.
  // Provenance of merged contributions), and each found one reads back.
  for (const std::string& id : written[type]) EXPECT_EQ(distinct.count(id), 1u) << id;
  for (const std::string& id : distinct) EXPECT_EQ(gateway_->get("/fhir/" + type + "/" + id).status, 200) << id;

  // POST _search with a form body finds the same.
  HttpResult posted = gateway_->post("/fhir/" + type + "/_search", "_count=1000", "application/x-www-form-urlencoded");
  ASSERT_EQ(posted.status, 200) << posted.body;
  json::Document all = parse(posted.body);
  std::set<std::string> posted_ids;
  for (const json::Value& entry : all["entry"].GetArray()) posted_ids.insert(str(entry["resource"], "id"));
  EXPECT_EQ(posted_ids, distinct);
}

TEST_F(SearchEndToEnd, ParametersErrorsSummaryAndElements) {
  startGateway();
  auto written = ingest();
  ASSERT_EQ(written["Patient"].size(), 1u);
  const std::string patient = *written["Patient"].begin();
  ASSERT_FALSE(written["ServiceRequest"].empty());

  // A reference parameter: the consult's ServiceRequest is about the patient.
  json::Document requests = parse(gateway_->get("/fhir/ServiceRequest?patient=Patient/" + patient).body);
  std::set<std::string> found;
  for (const json::Value& entry : requests["entry"].GetArray()) found.insert(str(entry["resource"], "id"));
  for (const std::string& id : written["ServiceRequest"]) EXPECT_EQ(found.count(id), 1u) << id;
  EXPECT_EQ(total(requests), static_cast<int64_t>(found.size()));
  json::Document none = parse(gateway_->get("/fhir/ServiceRequest?patient=Patient/not-there").body);
  EXPECT_FALSE(none.HasMember("entry"));
  EXPECT_EQ(total(none), 0);

  // _summary=count: the total only.
  json::Document count = parse(gateway_->get("/fhir/Patient?_summary=count").body);
  EXPECT_EQ(total(count), 1);
  EXPECT_FALSE(count.HasMember("entry"));

  // _elements: the listed elements, the mandatory ones and the SUBSETTED tag.
  json::Document subset = parse(gateway_->get("/fhir/Patient?_elements=gender").body);
  ASSERT_EQ(subset["entry"].Size(), 1u);
  const json::Value& resource = subset["entry"][0]["resource"];
  EXPECT_EQ(str(resource, "id"), patient);
  EXPECT_FALSE(resource.HasMember("name"));
  bool subsetted = false;
  for (const json::Value& tag : resource["meta"]["tag"].GetArray()) subsetted = subsetted || str(tag, "code") == "SUBSETTED";
  EXPECT_TRUE(subsetted);

  // An unknown parameter is 400 not-supported; with Prefer: handling=lenient it is ignored and
  // named in an OperationOutcome entry.
  HttpResult unknown = gateway_->get("/fhir/Patient?foo=1");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("not-supported"), std::string::npos);
  EXPECT_NE(unknown.body.find("foo"), std::string::npos);
  RawResponse lenient = rawRequest(gateway_->port(),
                                   "GET /fhir/Patient?foo=1 HTTP/1.1\r\nHost: x\r\nPrefer: handling=lenient\r\n"
                                   "Connection: close\r\n\r\n");
  ASSERT_EQ(lenient.status, 200) << lenient.body;
  json::Document lenient_bundle = parse(lenient.body);
  bool outcome = false;
  int matches = 0;
  for (const json::Value& entry : lenient_bundle["entry"].GetArray()) {
    if (str(entry["search"], "mode") == "outcome") {
      outcome = true;
      EXPECT_NE(json::serialize(entry["resource"]).find("foo"), std::string::npos);
    } else {
      ++matches;
    }
  }
  EXPECT_TRUE(outcome);
  EXPECT_EQ(matches, 1);
  EXPECT_EQ(gateway_->get("/fhir/Patient?birthdate=1974-1").status, 400);
  EXPECT_EQ(gateway_->get("/fhir/Patient?_cursor=nonsense").status, 400);
  EXPECT_EQ(gateway_->get("/fhir/NoSuchType?_count=1").status, 404);
}

}  // namespace
}  // namespace fhir::testing
