// SPDX-License-Identifier: Apache-2.0
// The HTTP semantics helpers of /fhir (gateway/server/fhir_http.h) and the route table's answers
// for paths and methods it does not serve (gateway/server/fhir_routes.h). Expected values are
// from RFC 9110 (dates, entity tags) and R4 http.html, worked out by hand.

#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "conformance/json/json.h"
#include "gateway/server/capability.h"
#include "gateway/server/fhir_http.h"
#include "gateway/server/fhir_routes.h"

namespace fhir::gateway {
namespace {

using fhirhttp::parseHttpDate;
using fhirhttp::parseInstantMs;

TEST(FhirHttpTest, InstantsAndHttpDatesConvertBothWays) {
  // 1994-11-06T08:49:37Z is RFC 9110's example date: 784111777 seconds after the epoch.
  EXPECT_EQ(parseInstantMs("1994-11-06T08:49:37Z"), 784111777000);
  EXPECT_EQ(fhirhttp::httpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(parseHttpDate("yesterday"), std::nullopt);
  // An offset moves the instant to UTC; a date alone is its midnight UTC; fractions are kept.
  EXPECT_EQ(parseInstantMs("1994-11-06T09:49:37+01:00"), 784111777000);
  EXPECT_EQ(parseInstantMs("1994-11-06T08:49:37.250Z"), 784111777250);
  EXPECT_EQ(parseInstantMs("1994-11-06"), 784080000000);
  EXPECT_EQ(parseInstantMs("1994-11-06T08:49"), 784111740000);  // minutes, as search dates allow; UTC
  EXPECT_EQ(parseInstantMs("1994-11-06T08"), std::nullopt);
  EXPECT_EQ(parseInstantMs("1994-13-06"), std::nullopt);
  EXPECT_EQ(parseInstantMs("06/11/1994"), std::nullopt);
  EXPECT_EQ(fhirhttp::isoMs(784111777250), "1994-11-06T08:49:37.250Z");
}

// A request with these headers and no body.
struct FakeRequest {
  explicit FakeRequest(std::vector<std::pair<std::string, std::string>> headers, std::string method = "GET",
                       std::string path = "/fhir/Patient/p1")
      : reader(*reinterpret_cast<http::Connection*>(connection_storage), http::BodyFraming{}, 0),
        body(&buffer),
        request{http::RequestHead{}, http::Target{}, "127.0.0.1", reader, body} {
    request.head.method = std::move(method);
    request.head.headers = std::move(headers);
    request.target.path = path;
    std::string segment;
    std::istringstream parts(path);
    while (std::getline(parts, segment, '/')) {
      if (!segment.empty()) request.target.segments.push_back(segment);
    }
  }
  // A body reader without a body never touches its connection (BodyReader's constructor marks an
  // unframed body complete), so none is made.
  alignas(std::max_align_t) char connection_storage[64] = {};
  http::BodyReader reader;
  std::stringbuf buffer;
  std::istream body;
  http::Request request;
};

TEST(FhirHttpTest, OnlyJsonIsProducedAndFormatOverridesAccept) {
  auto negotiated = [](std::vector<std::pair<std::string, std::string>> headers, fhirhttp::Parameters parameters) {
    FakeRequest fake(std::move(headers));
    bool pretty = false;
    auto refused = fhirhttp::negotiate(fake.request, parameters, pretty);
    return refused ? refused->status : (pretty ? 1 : 0);
  };
  EXPECT_EQ(negotiated({}, {}), 0);
  EXPECT_EQ(negotiated({{"accept", "application/fhir+json"}}, {}), 0);
  EXPECT_EQ(negotiated({{"accept", "text/html,application/xhtml+xml,*/*;q=0.8"}}, {}), 0);
  EXPECT_EQ(negotiated({{"accept", "application/fhir+xml"}}, {}), 406);
  EXPECT_EQ(negotiated({{"accept", "application/fhir+json;q=0, application/xml"}}, {}), 406);
  EXPECT_EQ(negotiated({}, {{"_format", "xml"}}), 406);
  EXPECT_EQ(negotiated({}, {{"_format", "application/fhir+xml"}}), 406);
  EXPECT_EQ(negotiated({{"accept", "application/fhir+xml"}}, {{"_format", "json"}}), 0);
  EXPECT_EQ(negotiated({}, {{"_pretty", "true"}}), 1);
  EXPECT_EQ(negotiated({}, {{"_pretty", "yes"}}), 400);
  // _format and _pretty leave the parameters; the others stay in order.
  FakeRequest fake({}, "GET");
  fhirhttp::Parameters parameters{{"_count", "2"}, {"_format", "json"}, {"_pretty", "false"}, {"_since", "2026"}};
  bool pretty = true;
  EXPECT_FALSE(fhirhttp::negotiate(fake.request, parameters, pretty).has_value());
  EXPECT_EQ(parameters, (fhirhttp::Parameters{{"_count", "2"}, {"_since", "2026"}}));
}

TEST(FhirHttpTest, ConditionalHeadersCompareVersionsAndDates) {
  const std::string updated = "1994-11-06T08:49:37.250Z";
  auto modified = [&](std::vector<std::pair<std::string, std::string>> headers) {
    FakeRequest fake(std::move(headers));
    return !fhirhttp::notModified(fake.request, 3, updated);
  };
  EXPECT_TRUE(modified({}));
  EXPECT_FALSE(modified({{"if-none-match", "W/\"3\""}}));
  EXPECT_FALSE(modified({{"if-none-match", "\"3\""}}));
  EXPECT_FALSE(modified({{"if-none-match", "W/\"1\", W/\"3\""}}));
  EXPECT_FALSE(modified({{"if-none-match", "*"}}));
  EXPECT_TRUE(modified({{"if-none-match", "W/\"2\""}}));
  // Last-Modified has whole seconds: the same second is not modified, the one before is.
  EXPECT_FALSE(modified({{"if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"}}));
  EXPECT_TRUE(modified({{"if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT"}}));
  // If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
  EXPECT_TRUE(modified({{"if-none-match", "W/\"2\""}, {"if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"}}));

  FakeRequest matching({{"if-match", "W/\"7\""}}, "PUT");
  EXPECT_EQ(fhirhttp::ifMatch(matching.request), "7");
  FakeRequest any({{"if-match", "*"}}, "PUT");
  EXPECT_EQ(fhirhttp::ifMatch(any.request), "");
  FakeRequest none({}, "PUT");
  EXPECT_EQ(fhirhttp::ifMatch(none.request), std::nullopt);

  Access access;
  fhirhttp::addVersionHeaders(access, 3, updated);
  EXPECT_EQ(access.headers, (std::vector<std::pair<std::string, std::string>>{
                                {"ETag", "W/\"3\""}, {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}}));
}

TEST(FhirHttpTest, PreferShapesTheAnswerOfAWrite) {
  const Answer written{201, "application/fhir+json", R"({"resourceType":"Subscription","id":"s"})", "http://x/fhir/Subscription/s/_history/1"};
  FakeRequest minimal({{"prefer", "return=minimal"}}, "POST");
  Answer answer = fhirhttp::shapedWrite(minimal.request, written, "done");
  EXPECT_EQ(answer.status, 201);
  EXPECT_EQ(answer.body, "");
  EXPECT_EQ(answer.location, written.location);
  FakeRequest outcome({{"prefer", "return=OperationOutcome"}}, "POST");
  EXPECT_NE(fhirhttp::shapedWrite(outcome.request, written, "done").body.find("\"OperationOutcome\""), std::string::npos);
  FakeRequest representation({{"prefer", "handling=strict; return=representation"}}, "POST");
  EXPECT_EQ(fhirhttp::shapedWrite(representation.request, written, "done").body, written.body);
  FakeRequest lenient({{"prefer", "handling=lenient"}}, "GET");
  EXPECT_TRUE(fhirhttp::preferLenient(lenient.request));
}

// A table with Patient read only and a system history: what each path and method answers.
TEST(FhirRoutesTest, UnservedMethodsAre405WithAllowAndUnknownTypes404) {
  FhirRoutes routes;
  int called = 0;
  routes.add("Patient", FhirInteraction::kRead, [&](FhirCall& call) {
    ++called;
    EXPECT_EQ(call.type, "Patient");
    EXPECT_EQ(call.id, "p1");
    return Answer{200, "application/fhir+json", "{}"};
  });
  routes.addSystem(FhirInteraction::kHistorySystem, [](FhirCall&) { return Answer{200, "application/fhir+json", "{}"}; });
  auto ask = [&](const std::string& method, const std::string& path, Access& access) {
    FakeRequest fake({}, method, path);
    return routes.dispatch(fake.request, access, false, {});
  };
  Access read;
  EXPECT_EQ(ask("GET", "/fhir/Patient/p1", read).status, 200);
  Access head;
  EXPECT_EQ(ask("HEAD", "/fhir/Patient/p1", head).status, 200);
  EXPECT_EQ(called, 2);

  Access patch;
  Answer patched = ask("PATCH", "/fhir/Patient/p1", patch);
  EXPECT_EQ(patched.status, 405);
  EXPECT_NE(patched.body.find("not-supported"), std::string::npos);
  EXPECT_NE(patched.body.find("patch interaction on Patient"), std::string::npos);
  EXPECT_EQ(patch.headers, (std::vector<std::pair<std::string, std::string>>{{"Allow", "GET, HEAD, OPTIONS"}}));

  Access post;
  Answer posted = ask("POST", "/fhir/Patient/p1", post);
  EXPECT_EQ(posted.status, 405);
  EXPECT_NE(posted.body.find("POST is not allowed"), std::string::npos);

  Access search;  // GET /fhir/Patient: search-type is not registered in this table
  Answer searched = ask("GET", "/fhir/Patient", search);
  EXPECT_EQ(searched.status, 405);
  EXPECT_NE(searched.body.find("search-type"), std::string::npos);
  EXPECT_EQ(search.headers, (std::vector<std::pair<std::string, std::string>>{{"Allow", "OPTIONS"}}));

  Access options;
  EXPECT_EQ(ask("OPTIONS", "/fhir/Patient/p1", options).status, 204);
  EXPECT_EQ(options.headers, (std::vector<std::pair<std::string, std::string>>{{"Allow", "GET, HEAD, OPTIONS"}}));

  Access unknown;
  Answer medication = ask("GET", "/fhir/Medication/m1", unknown);
  EXPECT_EQ(medication.status, 404);
  EXPECT_NE(medication.body.find("serves no Medication"), std::string::npos);
  Access history;
  EXPECT_EQ(ask("GET", "/fhir/_history", history).status, 200);
  Access vread;  // vread not registered for Patient
  EXPECT_EQ(ask("GET", "/fhir/Patient/p1/_history/1", vread).status, 405);
  Access transaction;
  EXPECT_EQ(ask("POST", "/fhir", transaction).status, 405);
}

// query.md: "Location (and Content-Location on 202s)". A 202 names its status URL in
// Content-Location (R4 async.html, Bulk Data kick-off); a 201 keeps Location.
TEST(FhirRoutesTest, A202NamesItsUrlInContentLocation) {
  FhirRoutes routes;
  routes.addSystemOperation(FhirOperation{"export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                                          FhirOperation::Level::kSystem, {"GET"}, [](FhirCall&) {
                                            return Answer{202, "application/fhir+json", "{}", "http://gw/fhir/status/1"};
                                          }});
  routes.add("Subscription", FhirInteraction::kCreate, [](FhirCall&) {
    return Answer{201, "application/fhir+json", "{}", "http://gw/fhir/Subscription/s1/_history/1"};
  });
  FakeRequest kickoff({}, "GET", "/fhir/$export");
  Access async;
  Answer accepted = routes.dispatch(kickoff.request, async, false, {});
  EXPECT_EQ(accepted.status, 202);
  EXPECT_EQ(accepted.location, "");
  EXPECT_EQ(async.headers, (std::vector<std::pair<std::string, std::string>>{{"Content-Location", "http://gw/fhir/status/1"}}));
  FakeRequest create({}, "POST", "/fhir/Subscription");
  Access created;
  Answer made = routes.dispatch(create.request, created, false, {});
  EXPECT_EQ(made.status, 201);
  EXPECT_EQ(made.location, "http://gw/fhir/Subscription/s1/_history/1");
  EXPECT_TRUE(created.headers.empty());
}

// Where the search route registers (issue 15 part A): search-type on the types it is given, with
// each type's parameters and their SearchParameter definitions, and nowhere else.
TEST(FhirRoutesTest, SearchIsListedWithItsParametersOnTheTypesItIsAddedTo) {
  auto registry = search::Registry::loadBundled();
  ASSERT_TRUE(registry.ok()) << registry.message();
  FhirRoutes routes;
  auto ok = [](FhirCall&) { return Answer{200, "application/fhir+json", "{}"}; };
  routes.add("Patient", FhirInteraction::kRead, ok);
  routes.add("Basic", FhirInteraction::kRead, ok);
  routes.addSearch({"Patient"}, ok, [&](const std::string& type) { return searchParamsOf(**registry, type); });
  auto statement = json::parse(capabilityStatement(routes, CapabilityOptions{"http://x/fhir", "", {}}));
  ASSERT_TRUE(statement.ok());
  const json::Value& resources = (*statement)["rest"][0]["resource"];
  ASSERT_EQ(resources.Size(), 2u);
  const json::Value& patient = resources[0];
  EXPECT_EQ(json::getString(patient, "type"), "Patient");
  EXPECT_EQ(json::getString(patient["interaction"][1], "code"), "search-type");
  std::map<std::string, std::string> definitions;
  for (const json::Value& param : patient["searchParam"].GetArray()) {
    definitions[std::string(json::getString(param, "name").value_or(""))] = std::string(json::getString(param, "definition").value_or(""));
  }
  // R4 core canonicals (SearchParameter-Patient-identifier.json, SearchParameter-Resource-id.json).
  EXPECT_EQ(definitions["identifier"], "http://hl7.org/fhir/SearchParameter/Patient-identifier");
  EXPECT_EQ(definitions["_id"], "http://hl7.org/fhir/SearchParameter/Resource-id");
  EXPECT_EQ(definitions["birthdate"], "http://hl7.org/fhir/SearchParameter/individual-birthdate");
  const json::Value& basic = resources[1];
  EXPECT_EQ(basic["interaction"].Size(), 1u);  // read only: search was not added to Basic
  EXPECT_FALSE(basic.HasMember("searchParam"));
}

}  // namespace
}  // namespace fhir::gateway
