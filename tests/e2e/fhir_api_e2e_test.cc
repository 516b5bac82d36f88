// SPDX-License-Identifier: Apache-2.0
// The FHIR read API over HTTP against the real binary (issue 15 part B, contracts/query.md
// "History and versions", "HTTP semantics", "CapabilityStatement"; http-api.md "FHIR"):
// the CapabilityStatement lists every contract route that exists and every interaction it lists
// answers; history and vread; ETag, 304, 412, If-None-Exist, Prefer, 406, _pretty, HEAD, 405 with
// Allow, Location. The routes the test expects are written here from the contracts, by hand,
// never read from the route table.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/e2e_fixture.h"

namespace fhir::testing {
namespace {

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// One request on its own connection (Connection: close), read to the end: also right for HEAD,
// 204 and 304, which carry no body.
Reply request(uint16_t port, const std::string& method, const std::string& target,
              const std::vector<std::pair<std::string, std::string>>& headers = {}, const std::string& body = {}) {
  Reply reply;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ADD_FAILURE() << "cannot connect";
    if (fd >= 0) ::close(fd);
    return reply;
  }
  std::string bytes = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) bytes += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") bytes += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  bytes += "\r\n" + body;
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string received;
  char chunk[65536];
  for (;;) {
    pollfd waiting{fd, POLLIN, 0};
    if (::poll(&waiting, 1, 10000) <= 0) break;
    const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) break;
    received.append(chunk, static_cast<size_t>(got));
  }
  ::close(fd);
  const size_t head_end = received.find("\r\n\r\n");
  if (head_end == std::string::npos || received.size() < 12) return reply;
  reply.status = std::atoi(received.c_str() + 9);
  size_t line = received.find("\r\n") + 2;
  while (line < head_end) {
    const size_t end = received.find("\r\n", line);
    const std::string field = received.substr(line, end - line);
    line = end + 2;
    const size_t colon = field.find(':');
    if (colon == std::string::npos) continue;
    std::string name = field.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    reply.headers[name] = field.substr(field.find_first_not_of(' ', colon + 1));
  }
  reply.body = received.substr(head_end + 4);
  return reply;
}

constexpr const char* kBackport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
constexpr const char* kTopics = "https://fhir.alignment-gateway.org/SubscriptionTopic/";

class FhirApi : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    startGateway();
  }
  Reply ask(const std::string& method, const std::string& target,
            const std::vector<std::pair<std::string, std::string>>& headers = {}, const std::string& body = {}) {
    return request(gateway_->port(), method, target, headers, body);
  }
  std::string subscription(const std::string& reason) const {
    return R"({"resourceType": "Subscription", "meta": {"profile": [")" + std::string(kBackport) +
           R"(backport-subscription"]}, "status": "requested", "reason": ")" + reason + R"(", "criteria": ")" +
           kTopics + R"(econsult-requested", "channel": {"type": "rest-hook", "endpoint": ")" + hie_.url("/notify") +
           R"(", "payload": "application/fhir+json", "_payload": {"extension": [{"url": ")" + kBackport +
           R"(backport-payload-content", "valueCode": "id-only"}]}}})";
  }
  // Posts the e-consult request, then its response: the Task and ServiceRequest get version 2.
  // Returns the answer Bundle of the request.
  json::Document ingestTwoVersions() {
    HttpResult first = gateway_->post("/ingest/econsult", event("request"));
    EXPECT_EQ(first.status, 202) << first.body;
    HttpResult second = gateway_->post("/ingest/econsult", event("response"));
    EXPECT_EQ(second.status, 202) << second.body;
    return parse(first.body);
  }
  static std::string idOf(const json::Value& bundle, const std::string& type) {
    const json::Value* resource = findEntry(bundle, type);
    return resource != nullptr ? std::string(json::getString(*resource, "id").value_or("")) : "";
  }
};

// Routes of http-api.md ("FHIR") and query.md (history, vread) the gateway serves, by hand: the
// types query.md names, each with read, vread and both histories.
const std::vector<std::string> kStoredTypes = {
    "Patient", "Coverage", "Claim", "ServiceRequest", "Task", "Communication", "CarePlan", "CareTeam", "Goal",
    "Condition", "Observation", "RiskAssessment", "EpisodeOfCare", "Group", "Organization", "Practitioner",
    "Provenance", "MeasureReport"};

const json::Value* entryFor(const json::Value& statement, const std::string& type) {
  for (const json::Value& resource : statement["rest"][0]["resource"].GetArray()) {
    if (json::getString(resource, "type") == type) return &resource;
  }
  return nullptr;
}

std::set<std::string> codesOf(const json::Value& list, const char* member) {
  std::set<std::string> codes;
  if (!list.IsArray()) return codes;
  for (const json::Value& entry : list.GetArray()) codes.insert(std::string(json::getString(entry, member).value_or("")));
  return codes;
}

bool answered(const Reply& reply) {
  // A route that is there answers anything but 405 (interaction not offered), 501, or a 404 that
  // says the path or type is not served.
  if (reply.status == 405 || reply.status == 501 || reply.status == 0) return false;
  return !(reply.status == 404 && (reply.body.find("not a route") != std::string::npos ||
                                   reply.body.find("serves no") != std::string::npos ||
                                   reply.body.find("has no operation") != std::string::npos ||
                                   reply.body.find("has no route") != std::string::npos));
}

TEST_F(FhirApi, TheCapabilityStatementListsEveryContractRouteAndEveryListedInteractionAnswers) {
  json::Document bundle = ingestTwoVersions();
  const std::string task = idOf(bundle, "Task");
  ASSERT_FALSE(task.empty());
  Reply metadata = ask("GET", "/fhir/metadata");
  ASSERT_EQ(metadata.status, 200) << metadata.body;
  json::Document statement = parse(metadata.body);
  EXPECT_EQ(json::getString(statement, "kind"), "instance");
  ASSERT_TRUE(statement.HasMember("implementation"));  // cpb-14

  // It validates with the gateway's own validator, with no error.
  HttpResult validated = gateway_->post("/fhir/$validate", metadata.body, "application/fhir+json");
  ASSERT_EQ(validated.status, 200);
  json::Document validation = parse(validated.body);
  for (const json::Value& issue : validation["issue"].GetArray()) {
    EXPECT_NE(json::getString(issue, "severity"), "error") << validated.body;
    EXPECT_NE(json::getString(issue, "severity"), "fatal") << validated.body;
  }

  // Every stored type: read, vread, history-instance, history-type; search-type once the search
  // route exists (it is a route of query.md: when GET /fhir/{type} answers, it must be listed).
  const bool search_exists = ask("GET", "/fhir/Patient?_id=nobody").status == 200;
  for (const std::string& type : kStoredTypes) {
    const json::Value* entry = entryFor(statement, type);
    ASSERT_NE(entry, nullptr) << type;
    std::set<std::string> codes = codesOf((*entry)["interaction"], "code");
    for (const char* code : {"read", "vread", "history-instance", "history-type"}) {
      EXPECT_TRUE(codes.count(code)) << type << " " << code;
    }
    if (search_exists) {
      EXPECT_TRUE(codes.count("search-type")) << type;
    }
    EXPECT_EQ(json::getString(*entry, "versioning"), "versioned");
    EXPECT_EQ(json::getString(*entry, "conditionalRead"), "full-support");
  }
  std::set<std::string> system = codesOf(statement["rest"][0]["interaction"], "code");
  EXPECT_TRUE(system.count("history-system"));
  EXPECT_TRUE(codesOf(statement["rest"][0]["operation"], "name").count("validate"));
  // Subscriptions: CRUD, $status, $events, conditional create, and the topics on this entry.
  const json::Value* subscriptions = entryFor(statement, "Subscription");
  ASSERT_NE(subscriptions, nullptr);
  std::set<std::string> codes = codesOf((*subscriptions)["interaction"], "code");
  for (const char* code : {"create", "read", "vread", "update", "delete", "history-instance"}) EXPECT_TRUE(codes.count(code)) << code;
  std::set<std::string> operations = codesOf((*subscriptions)["operation"], "name");
  EXPECT_TRUE(operations.count("status"));
  EXPECT_TRUE(operations.count("events"));
  EXPECT_TRUE(json::find(*subscriptions, "conditionalCreate")->GetBool());
  ASSERT_TRUE(subscriptions->HasMember("extension"));
  EXPECT_EQ((*subscriptions)["extension"].Size(), 10u);
  EXPECT_EQ(json::getString((*subscriptions)["extension"][0], "url"),
            std::string(kBackport) + "capabilitystatement-subscriptiontopic-canonical");
  EXPECT_FALSE(statement["rest"][0].HasMember("extension"));  // not on rest (backport IG)
  // The audit trail (http-api.md GET /fhir/AuditEvent) with its search parameters.
  const json::Value* audit = entryFor(statement, "AuditEvent");
  ASSERT_NE(audit, nullptr);
  EXPECT_TRUE(codesOf((*audit)["interaction"], "code").count("search-type"));
  EXPECT_EQ(codesOf((*audit)["searchParam"], "name"), (std::set<std::string>{"agent", "date", "entity", "subtype"}));
  // The SubscriptionTopic listing's entries are Basic resources whose fullUrls answer.
  Reply topics = ask("GET", "/fhir/SubscriptionTopic");
  ASSERT_EQ(topics.status, 200);
  json::Document listing = parse(topics.body);
  for (const json::Value& topic : listing["entry"].GetArray()) {
    const std::string url(json::getString(topic, "fullUrl").value_or(""));
    const std::string base = "http://127.0.0.1:" + std::to_string(gateway_->port());
    ASSERT_EQ(url.rfind(base + "/fhir/Basic/", 0), 0u) << url;
    Reply resolved = ask("GET", url.substr(base.size()));
    EXPECT_EQ(resolved.status, 200) << url;
    json::Document basic = parse(resolved.body);
    EXPECT_EQ(std::string(json::getString(basic, "id").value_or("")),
              std::string(json::getString(topic["resource"], "id").value_or("?")));
  }

  // Every interaction and operation listed answers.
  Reply created = ask("POST", "/fhir/Subscription", {{"Content-Type", "application/fhir+json"}}, subscription("listed"));
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string subscription_id(json::getString(parse(created.body), "id").value_or(""));
  for (const json::Value& resource : statement["rest"][0]["resource"].GetArray()) {
    const std::string type(json::getString(resource, "type").value_or(""));
    const std::string id = type == "Subscription" ? subscription_id : type == "Task" ? task : type == "Basic" ? "econsult-requested" : "unknown-id";
    for (const std::string& code : codesOf(resource["interaction"], "code")) {
      Reply reply;
      if (code == "read") reply = ask("GET", "/fhir/" + type + "/" + id);
      if (code == "vread") reply = ask("GET", "/fhir/" + type + "/" + id + "/_history/1");
      if (code == "history-instance") reply = ask("GET", "/fhir/" + type + "/" + id + "/_history");
      if (code == "history-type") reply = ask("GET", "/fhir/" + type + "/_history");
      if (code == "search-type") reply = ask("GET", "/fhir/" + type);
      if (code == "create") reply = ask("POST", "/fhir/" + type, {{"Content-Type", "application/fhir+json"}}, subscription("create"));
      if (code == "update") reply = ask("PUT", "/fhir/" + type + "/" + id, {{"Content-Type", "application/fhir+json"}}, subscription("update"));
      if (code == "delete") continue;  // below, last
      EXPECT_TRUE(answered(reply)) << type << " " << code << ": " << reply.status << " " << reply.body;
    }
    for (const std::string& name : codesOf(resource["operation"], "name")) {
      Reply reply = name == "validate" ? ask("POST", "/fhir/" + type + "/$validate", {{"Content-Type", "application/fhir+json"}},
                                             R"({"resourceType":")" + type + "\"}")
                                       : ask("GET", "/fhir/" + type + "/" + id + "/$" + name);
      EXPECT_TRUE(answered(reply)) << type << " $" << name << ": " << reply.status << " " << reply.body;
    }
  }
  EXPECT_TRUE(answered(ask("GET", "/fhir/_history")));
  EXPECT_TRUE(answered(ask("POST", "/fhir/$validate", {{"Content-Type", "application/fhir+json"}}, R"({"resourceType":"Patient"})")));
  Reply deleted = ask("DELETE", "/fhir/Subscription/" + subscription_id);
  EXPECT_EQ(deleted.status, 200) << deleted.body;
}

TEST_F(FhirApi, HistoryAndVreadAtInstanceTypeAndSystemLevel) {
  json::Document bundle = ingestTwoVersions();
  const std::string task = idOf(bundle, "Task");
  Reply current = ask("GET", "/fhir/Task/" + task);
  ASSERT_EQ(current.status, 200);
  const std::string version(json::getString(parse(current.body)["meta"], "versionId").value_or(""));
  ASSERT_EQ(version, "2") << current.body;

  Reply history = ask("GET", "/fhir/Task/" + task + "/_history");
  ASSERT_EQ(history.status, 200) << history.body;
  json::Document instance = parse(history.body);
  EXPECT_EQ(json::getString(instance, "type"), "history");
  ASSERT_EQ(instance["entry"].Size(), 2u);
  EXPECT_EQ(json::getString(instance["entry"][0]["resource"]["meta"], "versionId"), "2");  // newest first
  EXPECT_EQ(json::getString(instance["entry"][1]["resource"]["meta"], "versionId"), "1");
  EXPECT_EQ(json::getString(instance["entry"][0]["request"], "method"), "PUT");
  EXPECT_EQ(json::getString(instance["entry"][0]["request"], "url"), "Task/" + task);
  EXPECT_EQ(json::getString(instance["entry"][1]["request"], "method"), "POST");
  EXPECT_EQ(json::getString(instance["entry"][0]["response"], "etag"), "W/\"2\"");
  EXPECT_EQ(json::getString(instance["entry"][1]["response"], "status"), "201 Created");
  // The history Bundle validates.
  HttpResult validated = gateway_->post("/fhir/$validate", history.body, "application/fhir+json");
  json::Document validation = parse(validated.body);
  for (const json::Value& issue : validation["issue"].GetArray()) {
    EXPECT_NE(json::getString(issue, "severity"), "error") << validated.body;
  }

  Reply first = ask("GET", "/fhir/Task/" + task + "/_history/1");
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.headers["etag"], "W/\"1\"");
  EXPECT_EQ(json::getString(parse(first.body)["meta"], "versionId"), "1");
  EXPECT_NE(first.body, current.body);
  EXPECT_EQ(ask("GET", "/fhir/Task/" + task + "/_history/3").status, 404);
  EXPECT_EQ(ask("GET", "/fhir/Task/" + task + "/_history/x").status, 404);
  EXPECT_EQ(ask("GET", "/fhir/Task/no-such-task/_history").status, 404);

  // Type level: only Tasks. System level, two at a time through the `next` links: every version
  // once, newest first, while another event is written between the pages.
  json::Document tasks = parse(ask("GET", "/fhir/Task/_history").body);
  for (const json::Value& entry : tasks["entry"].GetArray()) EXPECT_EQ(json::getString(entry["resource"], "resourceType"), "Task");
  json::Document everything = parse(ask("GET", "/fhir/_history?_count=1000").body);
  std::vector<std::string> expected;
  for (const json::Value& entry : everything["entry"].GetArray()) {
    expected.push_back(std::string(json::getString(entry, "fullUrl").value_or("")) + "|" +
                       std::string(json::getString(entry["resource"]["meta"], "versionId").value_or("")));
  }
  ASSERT_GE(expected.size(), 6u);
  std::vector<std::string> paged;
  std::string next = "/fhir/_history?_count=2";
  const std::string base = "http://127.0.0.1:" + std::to_string(gateway_->port());
  for (int page = 0; page < 100 && !next.empty(); ++page) {
    Reply reply = ask("GET", next);
    ASSERT_EQ(reply.status, 200) << reply.body;
    json::Document doc = parse(reply.body);
    EXPECT_LE(doc["entry"].Size(), 2u);
    for (const json::Value& entry : doc["entry"].GetArray()) {
      paged.push_back(std::string(json::getString(entry, "fullUrl").value_or("")) + "|" +
                      std::string(json::getString(entry["resource"]["meta"], "versionId").value_or("")));
    }
    if (page == 0) {
      // Another consult: new resources and versions, all newer than every page key.
      const std::string another = replaceOnce(replaceOnce(event("request"), "evt-7f3a-0001", "evt-between-pages"),
                                              "EC-2026-000451", "EC-2026-000999");
      HttpResult between = gateway_->post("/ingest/econsult", another);
      ASSERT_EQ(between.status, 202) << between.body;
    }
    next.clear();
    for (const json::Value& link : doc["link"].GetArray()) {
      if (json::getString(link, "relation") == "next") next = std::string(json::getString(link, "url").value_or("")).substr(base.size());
    }
  }
  EXPECT_EQ(paged, expected);

  // _since: a future instant has nothing; a bad one is 400; an unknown parameter 400, or ignored
  // and reported with Prefer: handling=lenient.
  EXPECT_EQ(parse(ask("GET", "/fhir/_history?_since=2999-01-01T00:00:00Z").body)["entry"].Size(), 0u);
  EXPECT_EQ(parse(ask("GET", "/fhir/Task/_history?_since=2000-01-01").body)["entry"].Size(),
            parse(ask("GET", "/fhir/Task/_history").body)["entry"].Size());
  EXPECT_EQ(ask("GET", "/fhir/_history?_since=yesterday").status, 400);
  EXPECT_EQ(ask("GET", "/fhir/_history?colour=blue").status, 400);
  Reply lenient = ask("GET", "/fhir/Task/_history?colour=blue", {{"Prefer", "handling=lenient"}});
  EXPECT_EQ(lenient.status, 200);
  EXPECT_NE(lenient.body.find("'colour' is not supported"), std::string::npos);
}

TEST_F(FhirApi, HttpSemanticsOnReads) {
  json::Document bundle = ingestTwoVersions();
  const std::string task = idOf(bundle, "Task");
  const std::string path = "/fhir/Task/" + task;
  Reply read = ask("GET", path);
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.headers["etag"], "W/\"2\"");
  ASSERT_TRUE(read.headers.count("last-modified"));
  EXPECT_EQ(read.headers["content-location"], "http://127.0.0.1:" + std::to_string(gateway_->port()) + path + "/_history/2");
  EXPECT_EQ(read.headers["content-type"], "application/fhir+json");

  Reply same = ask("GET", path, {{"If-None-Match", "W/\"2\""}});
  EXPECT_EQ(same.status, 304);
  EXPECT_EQ(same.body, "");
  EXPECT_EQ(same.headers["etag"], "W/\"2\"");
  EXPECT_EQ(ask("GET", path, {{"If-None-Match", "W/\"1\""}}).status, 200);
  EXPECT_EQ(ask("GET", path, {{"If-Modified-Since", read.headers["last-modified"]}}).status, 304);
  EXPECT_EQ(ask("GET", path, {{"If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT"}}).status, 200);

  // JSON only: XML is 406, by Accept or _format; _format=json overrides Accept.
  EXPECT_EQ(ask("GET", path, {{"Accept", "application/fhir+xml"}}).status, 406);
  EXPECT_EQ(ask("GET", path + "?_format=xml").status, 406);
  EXPECT_EQ(ask("GET", path + "?_format=json", {{"Accept", "application/fhir+xml"}}).status, 200);
  EXPECT_EQ(ask("GET", "/fhir/metadata", {{"Accept", "application/fhir+xml"}}).status, 406);
  Reply pretty = ask("GET", path + "?_pretty=true");
  EXPECT_NE(pretty.body.find("\n"), std::string::npos);
  EXPECT_EQ(parse(pretty.body), parse(read.body));

  // HEAD: the GET's headers without a body.
  Reply head = ask("HEAD", path);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.headers["content-length"], std::to_string(read.body.size()));
  EXPECT_EQ(head.headers["etag"], "W/\"2\"");

  // A known route with a method it does not take: 405 with Allow; interactions not offered: 405
  // not-supported; never 404 "not a route" for a known type. An unknown type is 404.
  Reply patch = ask("PATCH", path, {{"Content-Type", "application/json-patch+json"}}, "[]");
  EXPECT_EQ(patch.status, 405);
  EXPECT_EQ(patch.headers["allow"], "GET, HEAD, OPTIONS");
  EXPECT_NE(patch.body.find("not-supported"), std::string::npos);
  EXPECT_EQ(ask("PUT", path, {{"Content-Type", "application/fhir+json"}}, "{}").status, 405);
  EXPECT_EQ(ask("DELETE", path).status, 405);
  EXPECT_EQ(ask("POST", path, {{"Content-Type", "application/fhir+json"}}, "{}").status, 405);
  EXPECT_EQ(ask("POST", "/fhir/Task", {{"Content-Type", "application/fhir+json"}}, "{}").status, 405);
  EXPECT_EQ(ask("POST", "/fhir", {{"Content-Type", "application/fhir+json"}}, "{}").status, 405);
  EXPECT_EQ(ask("DELETE", "/fhir/metadata").headers["allow"], "GET, HEAD, OPTIONS");
  EXPECT_EQ(ask("GET", "/fhir/$validate").headers["allow"], "POST, OPTIONS");
  Reply options = ask("OPTIONS", "/fhir/Subscription/x");
  EXPECT_EQ(options.status, 204);
  EXPECT_EQ(options.headers["allow"], "GET, HEAD, PUT, DELETE, OPTIONS");
  EXPECT_EQ(ask("GET", "/fhir/Medication/m1").status, 404);
}

// _summary and _elements on read, vread, history and search (R4 3.1.1.5.8/9). The Task elements
// R4 marks isSummary (Σ in the spec's Task structure), written by hand: every member of the
// summary is one of them, every one of them the full Task has is kept. Mandatory: status, intent.
bool subsettedTag(const json::Value& resource) {
  const json::Value* meta = json::find(resource, "meta");
  const json::Value* tags = meta != nullptr ? json::find(*meta, "tag") : nullptr;
  if (tags == nullptr || !tags->IsArray()) return false;
  for (const json::Value& tag : tags->GetArray()) {
    if (json::getString(tag, "code") == "SUBSETTED" &&
        json::getString(tag, "system") == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue") {
      return true;
    }
  }
  return false;
}

std::set<std::string> memberNames(const json::Value& object) {
  std::set<std::string> out;
  for (auto member = object.MemberBegin(); member != object.MemberEnd(); ++member) out.insert(member->name.GetString());
  return out;
}

TEST_F(FhirApi, SummaryAndElementsOnReadVreadHistoryAndSearch) {
  json::Document bundle = ingestTwoVersions();
  const std::string task = idOf(bundle, "Task");
  const std::string path = "/fhir/Task/" + task;
  const std::set<std::string> summary = {
      "resourceType", "id", "meta", "implicitRules", "instantiatesCanonical", "instantiatesUri", "basedOn",
      "groupIdentifier", "partOf", "status", "statusReason", "businessStatus", "intent", "code", "description",
      "focus", "for", "encounter", "executionPeriod", "lastModified", "requester", "owner", "location"};
  json::Document full = parse(ask("GET", path).body);
  const std::set<std::string> all = memberNames(full);
  ASSERT_TRUE(std::any_of(all.begin(), all.end(), [&](const std::string& name) { return summary.count(name) == 0; }))
      << "the Task has only summary elements: the test would prove nothing";
  EXPECT_FALSE(subsettedTag(full));

  Reply brief = ask("GET", path + "?_summary=true");
  ASSERT_EQ(brief.status, 200) << brief.body;
  EXPECT_EQ(brief.headers["etag"], "W/\"2\"");
  json::Document shown = parse(brief.body);
  std::set<std::string> expected;
  for (const std::string& name : all) {
    if (summary.count(name) != 0) expected.insert(name);
  }
  expected.insert("meta");
  EXPECT_EQ(memberNames(shown), expected);
  EXPECT_TRUE(subsettedTag(shown));

  json::Document some = parse(ask("GET", path + "?_elements=status").body);
  EXPECT_EQ(memberNames(some), (std::set<std::string>{"resourceType", "id", "meta", "status", "intent"}));
  EXPECT_TRUE(subsettedTag(some));

  Reply first = ask("GET", path + "/_history/1?_summary=text");
  ASSERT_EQ(first.status, 200) << first.body;
  json::Document text = parse(first.body);
  for (const std::string& name : memberNames(text)) {
    EXPECT_TRUE((std::set<std::string>{"resourceType", "id", "meta", "text", "status", "intent"}).count(name)) << name;
  }
  EXPECT_EQ(json::getString(text["meta"], "versionId"), "1");
  EXPECT_TRUE(subsettedTag(text));
  json::Document data = parse(ask("GET", path + "?_summary=data").body);
  EXPECT_EQ(json::find(data, "text"), nullptr);
  EXPECT_TRUE(subsettedTag(data));
  EXPECT_EQ(parse(ask("GET", path + "?_summary=false").body), full);

  Reply history = ask("GET", path + "/_history?_summary=true");
  ASSERT_EQ(history.status, 200) << history.body;
  json::Document versions = parse(history.body);
  ASSERT_EQ(versions["entry"].Size(), 2u);
  for (const json::Value& entry : versions["entry"].GetArray()) {
    for (const std::string& name : memberNames(entry["resource"])) EXPECT_TRUE(summary.count(name)) << name;
    EXPECT_TRUE(subsettedTag(entry["resource"]));
  }
  EXPECT_NE(std::string(json::getString(versions["link"][0], "url").value_or("")).find("_summary=true"), std::string::npos);

  Reply searched = ask("GET", "/fhir/Task?_id=" + task + "&_summary=true");
  ASSERT_EQ(searched.status, 200) << searched.body;
  json::Document found = parse(searched.body);
  ASSERT_EQ(found["entry"].Size(), 1u);
  EXPECT_EQ(memberNames(found["entry"][0]["resource"]), expected);

  EXPECT_EQ(ask("GET", path + "?_summary=count").status, 400);
  EXPECT_EQ(ask("GET", path + "?_summary=true&_elements=status").status, 400);
  EXPECT_EQ(ask("GET", "/fhir/Task?_summary=true&_elements=status").status, 400);
  EXPECT_EQ(ask("GET", path + "/_history?_summary=maybe").status, 400);
}

TEST_F(FhirApi, SubscriptionVersionsPreconditionsAndPrefer) {
  Reply created = ask("POST", "/fhir/Subscription", {{"Content-Type", "application/fhir+json"}}, subscription("first"));
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id(json::getString(parse(created.body), "id").value_or(""));
  const std::string base = "http://127.0.0.1:" + std::to_string(gateway_->port()) + "/fhir";
  EXPECT_EQ(created.headers["location"], base + "/Subscription/" + id + "/_history/1");
  EXPECT_EQ(created.headers["etag"], "W/\"1\"");
  EXPECT_EQ(json::getString(parse(created.body)["meta"], "versionId"), "1");
  // The versioned Location answers (the current version of a Subscription is kept).
  EXPECT_EQ(ask("GET", "/fhir/Subscription/" + id + "/_history/1").status, 200);
  EXPECT_EQ(ask("GET", "/fhir/Subscription/" + id, {{"If-None-Match", "W/\"1\""}}).status, 304);

  const std::string path = "/fhir/Subscription/" + id;
  const std::string body = replaceOnce(subscription("second"), "\"resourceType\": \"Subscription\",",
                                       "\"resourceType\": \"Subscription\", \"id\": \"" + id + "\",");
  Reply updated = ask("PUT", path, {{"Content-Type", "application/fhir+json"}, {"If-Match", "W/\"1\""}}, body);
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(updated.headers["etag"], "W/\"2\"");
  EXPECT_EQ(updated.headers["location"], base + "/Subscription/" + id + "/_history/2");
  // Stale If-Match: 412, nothing changes.
  Reply stale = ask("PUT", path, {{"Content-Type", "application/fhir+json"}, {"If-Match", "W/\"1\""}}, body);
  EXPECT_EQ(stale.status, 412) << stale.body;
  EXPECT_EQ(ask("DELETE", path, {{"If-Match", "W/\"1\""}}).status, 412);
  EXPECT_EQ(ask("GET", path).headers["etag"], "W/\"2\"");
  EXPECT_EQ(ask("GET", "/fhir/Subscription/" + id + "/_history/1").status, 404);
  // Its history holds what is kept: the current version, an update of the Subscription.
  Reply history = ask("GET", path + "/_history");
  ASSERT_EQ(history.status, 200) << history.body;
  json::Document versions = parse(history.body);
  EXPECT_EQ(json::getString(versions, "type"), "history");
  ASSERT_EQ(versions["entry"].Size(), 1u) << history.body;
  EXPECT_EQ(json::getString(versions["entry"][0]["resource"]["meta"], "versionId"), "2");
  EXPECT_EQ(json::getString(versions["entry"][0]["request"], "method"), "PUT");
  EXPECT_EQ(json::getString(versions["entry"][0]["response"], "etag"), "W/\"2\"");
  EXPECT_EQ(json::getString(versions["entry"][0], "fullUrl"), base + "/Subscription/" + id);
  // _since after the update: nothing; a bad parameter: 400.
  EXPECT_EQ(parse(ask("GET", path + "/_history?_since=2999-01-01T00:00:00Z").body)["entry"].Size(), 0u);
  EXPECT_EQ(parse(ask("GET", path + "/_history?_since=2000-01-01T00:00:00Z").body)["entry"].Size(), 1u);
  EXPECT_EQ(ask("GET", path + "/_history?_at=2020").status, 400);
  EXPECT_EQ(ask("GET", "/fhir/Subscription/unknown/_history").status, 404);

  // If-None-Exist: an existing match is answered, not created again; no match creates.
  Reply again = ask("POST", "/fhir/Subscription",
                    {{"Content-Type", "application/fhir+json"}, {"If-None-Exist", "_id=" + id}}, subscription("again"));
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::getString(parse(again.body), "id"), id);
  Reply fresh = ask("POST", "/fhir/Subscription",
                    {{"Content-Type", "application/fhir+json"}, {"If-None-Exist", "url=https://nowhere.example/x"},
                     {"Prefer", "return=minimal"}},
                    subscription("fresh"));
  EXPECT_EQ(fresh.status, 201);
  EXPECT_EQ(fresh.body, "");
  EXPECT_NE(fresh.headers["location"].find("/_history/1"), std::string::npos);
  Reply outcome = ask("POST", "/fhir/Subscription", {{"Content-Type", "application/fhir+json"}, {"Prefer", "return=OperationOutcome"}},
                      subscription("outcome"));
  EXPECT_EQ(outcome.status, 201);
  EXPECT_EQ(json::getString(parse(outcome.body), "resourceType"), "OperationOutcome");
  EXPECT_EQ(ask("POST", "/fhir/Subscription", {{"Content-Type", "application/fhir+json"}, {"If-None-Exist", "status=requested,active,error,off"}},
                subscription("many")).status,
            412);

  Reply deleted = ask("DELETE", path, {{"If-Match", "W/\"2\""}});
  EXPECT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(ask("GET", path).status, 404);
}

}  // namespace
}  // namespace fhir::testing
