// SPDX-License-Identifier: Apache-2.0
#pragma once

// The FHIR routes under /fhir as one table (type x interaction x handler): the router dispatches
// from it and the CapabilityStatement is generated from it (capability.h), so the two cannot
// drift. What the table does not hold is not served:
//  * a type it does not know: 404 (`not-supported`, "this gateway serves no Medication");
//  * a known path with a method nothing is registered for: 405 with `Allow` (the methods that
//    are registered for that path), `not-supported` naming the FHIR interaction when the method
//    is one (PATCH is `patch`, PUT on an instance `update`, ...);
//  * HEAD is GET without the body; OPTIONS answers 204 with `Allow`;
//  * a handler's 202 with a location sends it as `Content-Location` (the status URL of an
//    asynchronous request), not `Location`.
// The HTTP semantics every route shares (406 for XML, _format, _pretty, ETag, 304, 412, Prefer)
// are in fhir_http.h; the handlers call them.
// Thread-safe once built: dispatch() only reads the table.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/auth/audit.h"
#include "gateway/auth/policy.h"
#include "gateway/ingest/answer.h"
#include "gateway/server/listener.h"

namespace fhir::gateway {

// Who asks, what the request's AuditEvent says (audit.subtype empty: not audited) and headers a
// route adds to its answer (ETag, Last-Modified, Allow, Content-Location).
struct Access {
  auth::Caller caller;
  auth::AuditEntry audit;
  std::vector<std::pair<std::string, std::string>> headers = {};
};

// The FHIR RESTful interactions (R4 `TypeRestfulInteraction` and `SystemRestfulInteraction`).
enum class FhirInteraction {
  kRead, kVread, kUpdate, kPatch, kDelete, kHistoryInstance, kHistoryType, kCreate, kSearchType,
  kHistorySystem, kSearchSystem, kTransaction, kCapabilities, kOperation
};
// "read", "vread", "history-instance", ... as the CapabilityStatement codes them.
std::string_view interactionCode(FhirInteraction interaction);

// One request as the table routed it.
struct FhirCall {
  http::Request& request;
  Access& access;
  FhirInteraction interaction;
  std::string type;       // empty at system level
  std::string id;         // instance level
  std::string version;    // vread
  std::string operation;  // "$status" for an operation
  std::vector<std::pair<std::string, std::string>> parameters;  // the decoded query, _format and _pretty left out
  bool pretty = false;
};
using FhirHandler = std::function<Answer(FhirCall&)>;

// A search parameter as the CapabilityStatement lists it.
struct SearchParamInfo {
  std::string name;
  std::string definition;  // canonical URL of its SearchParameter
  std::string type;        // "token", "date", ...
};

struct FhirOperation {
  enum class Level { kSystem, kType, kInstance };
  std::string name;        // without '$': "validate"
  std::string definition;  // canonical of its OperationDefinition
  Level level = Level::kInstance;
  std::vector<std::string> methods;  // "GET", "POST"
  FhirHandler handler;
};

// One resource type with what the gateway does with it.
struct FhirTypeRoutes {
  std::string type;
  std::string documentation;
  std::vector<std::pair<FhirInteraction, FhirHandler>> interactions;  // in the order listed
  std::vector<FhirOperation> operations;                              // type and instance level
  std::vector<SearchParamInfo> search_params;
  std::vector<std::string> extensions;  // JSON objects put on the statement's resource entry
  bool versioned = false;               // vread and meta.versionId: `versioning` versioned
  bool conditional_create = false;      // If-None-Exist
  bool conditional_read = false;        // If-None-Match / If-Modified-Since
  bool conditional_update = false;      // If-Match on PUT/DELETE

  const FhirHandler* handler(FhirInteraction interaction) const;
};

class FhirRoutes {
 public:
  // Adds the type (or returns it when it is there).
  FhirTypeRoutes& type(const std::string& name);
  void add(const std::string& type, FhirInteraction interaction, FhirHandler handler);
  // A system-level interaction (history-system, search-system, transaction).
  void addSystem(FhirInteraction interaction, FhirHandler handler);
  void addOperation(const std::string& type, FhirOperation operation);
  void addSystemOperation(FhirOperation operation);
  // An operation served on every type, listed in the table's types and on `rest` ($validate).
  void addAnyTypeOperation(FhirOperation operation);
  // A path under /fhir that is not a FHIR type (GET /fhir/SubscriptionTopic): GET only.
  void addPath(const std::string& segment, FhirHandler handler);
  // Search-type (GET /fhir/{type}, POST /fhir/{type}/_search) on each of `types` that has no
  // search yet, with the parameters `params(type)` gives (capability.h searchParamsOf): where the
  // search route (search_route.h) registers, e.g. with storedResourceTypes() (read_routes.h).
  void addSearch(const std::vector<std::string>& types, const FhirHandler& handler,
                 const std::function<std::vector<SearchParamInfo>(const std::string&)>& params);

  const std::vector<FhirTypeRoutes>& types() const { return types_; }
  const FhirTypeRoutes* find(std::string_view type) const;
  const std::vector<std::pair<FhirInteraction, FhirHandler>>& systemInteractions() const { return system_; }
  const std::vector<FhirOperation>& systemOperations() const { return system_operations_; }
  const std::vector<FhirOperation>& anyTypeOperations() const { return any_type_operations_; }

  // Routes a request whose first segment is "fhir": calls the handler registered for it, or
  // answers 404/405/204 as the header says. `access.headers` receives Allow.
  Answer dispatch(http::Request& request, Access& access, bool pretty,
                  std::vector<std::pair<std::string, std::string>> parameters) const;
  // The methods served on the path of `segments` (without HEAD and OPTIONS); empty: no route.
  std::vector<std::string> allowed(const std::vector<std::string>& segments) const;

 private:
  struct Candidate {
    std::string method;
    FhirInteraction interaction;
    const FhirHandler* handler;  // null: the interaction is not offered
    std::string operation;
  };
  // What the path could be asked, whether offered or not; nullopt: not a path of this server.
  std::optional<std::vector<Candidate>> candidates(const std::vector<std::string>& segments, std::string& why) const;

  std::vector<FhirTypeRoutes> types_;
  std::vector<std::pair<FhirInteraction, FhirHandler>> system_;
  std::vector<FhirOperation> system_operations_;
  std::vector<FhirOperation> any_type_operations_;
  std::map<std::string, FhirHandler, std::less<>> paths_;
};

// `text` is a resource type name as R4 spells them (an upper-case letter, then letters/digits).
bool isResourceTypeName(std::string_view text);
// `text` is a resource id: [A-Za-z0-9\-\.]{1,64}.
bool isResourceIdText(std::string_view text);
// An OperationOutcome answer with one error issue.
Answer outcomeAnswer(int status, std::string code, std::string diagnostics);
// Reads at most `limit` + 1 bytes of the body into `body` (room grows with what arrives, so a
// large declared length costs nothing until the bytes come).
void readBodyUpTo(http::Request& request, size_t limit, std::string& body);
// The answer to a body that did not arrive as framed: 408 when it stopped arriving, 400 when it
// ended early or its chunks are malformed; nullopt when the body is complete.
std::optional<Answer> bodyProblem(const http::Request& request);
// Reads a body that is not an ingest (nothing to quarantine): 413 past `limit`, 408/400 for a
// body that did not arrive whole; nullopt when `body` is complete.
std::optional<Answer> readRequestBody(http::Request& request, size_t limit, std::string& body);

}  // namespace fhir::gateway
