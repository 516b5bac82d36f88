// SPDX-License-Identifier: Apache-2.0
#pragma once

// The mapping engine: declarative specs (mappers/specs/*.json, documented in
// mappers/specs/README.md) compiled once at load time, then run record by record over a stream.
//
// Library API for the CLI (`fhir-gateway map`) and the gateway's ingest routes
// (POST /ingest/claims/{payerId}, /ingest/roster/{payerId}, ...):
//
//   auto library = engine::SpecLibrary::load({});            // once, at start-up
//   engine::MapOptions options{.payer_id = "lakeshore-medicaid", .directory = &directory, ...};
//   auto summary = library->mapSource("lakeshore-medicaid", request.stream(), options,
//       [&](engine::MappedBundle& mapped) { ... store mapped.bundle ... },
//       [&](engine::Rejection& rejected) { ... quarantine rejected.raw with
//                                          toOperationOutcome(rejected.issues) ... });
//
// mapSource() reads the stream once, in constant memory (one record, or one group of
// consecutive claim lines, at a time), and calls exactly one of the two callbacks per record,
// in input order, on the calling thread. A bad record never stops the stream; a stream that
// cannot be read any further (bad CSV header, broken ISA) ends it with a fatal rejection
// (`MapSummary::fatal`). The SpecLibrary is immutable after load() and may be shared by threads.

#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "conformance/validator/validator.h"
#include "mappers/common/directory.h"

namespace fhir::mappers::engine {

struct LoadOptions {
  // Folder of *.json specs; empty = the bundled mappers/specs.
  std::string specs_dir;
  // Folder of the alignment package (ConceptMap-*.json); empty = bundled fhir_profiles/alignment/package.
  std::string alignment_dir;
  // R4 core package (StructureDefinition-*.json) for checking target paths; empty = bundled.
  std::string core_dir;
};

struct MapOptions {
  // The payer named by the request path or `map --payer`; the spec's own id when empty.
  std::string payer_id;
  // Configured payers (name, identifier). May be null: then the payer is known by its id only.
  const Directory* directory = nullptr;
  // Name of the source (file name, "request"), part of the Provenance's source identifier.
  std::string source_name = "input";
  // Provenance.recorded: a dateTime with offset. Empty = the current UTC time.
  std::string now;
  // Bundle entries get fullUrl `{base_url}/{type}/{id}`; empty = `urn:uuid:{id}`.
  std::string base_url;
  // When set, every Bundle is validated (against the profiles in meta.profile); errors reject
  // the record. The validator must know the alignment profiles.
  const Validator* validator = nullptr;
  // The stored JSON of a resource (type, id), for resources a spec marks "update": "merge"
  // (the e-consult ServiceRequest, updated by later events). Unset or nullopt: not stored.
  std::function<std::optional<std::string>(const std::string& type, const std::string& id)> stored_resource;
  // limits.maxRecordBytes: a record (a CSV group of lines, an NDJSON line, an X12 claim) larger
  // than this is rejected as one record, its first bytes kept with the SHA-256 of the whole, and
  // the source goes on; a CSV group past it is not held (its rows are hashed and dropped).
  // 0: no limit.
  size_t max_record_bytes = 0;
};

// A typed fact the spec declares on a resource (`"fact": "billing"`): the resource it made and
// the place in the record of the item it came from, so that the gateway names a place in the
// source without reading the source's members (issue 12, Build 1).
struct ResourceFact {
  std::string kind;       // the spec's "fact": "billing" (a billing line, a Claim)
  std::string reference;  // "Claim/<id>"
  std::string location;   // its forEach item: "$.episode.billing[1]" for a posted event, else "line 4, ..."
};

struct MappedBundle {
  json::Document bundle;  // Bundle type collection; the last entry is the Provenance
  std::vector<ResourceFact> facts;  // in Bundle order, one per made resource whose spec declares a fact
  std::string record_id;  // the source's own key (claim id, member id, event id)
  std::string position;   // "line 2", "interchange 000000101, transaction set 0001, segment 19"
  IssueList warnings;
};

struct Rejection {
  IssueList issues;       // at least one error; `location` names line/column or segment/element
  std::string raw;        // the record's bytes, to quarantine
  std::string position;
  bool fatal = false;     // the stream ended here
  // What a replay puts around `raw` so that the reader reads it alone (an X12 claim's
  // interchange envelope and transaction header, readers::RecordFrame); empty when not needed
  // or not known.
  std::string replay_prefix = {};
  std::string replay_suffix = {};
  // SHA-256 (hex) of the whole record when `raw` holds only its first bytes (maxRecordBytes).
  std::string raw_sha256 = {};
};

struct MapSummary {
  size_t records = 0;
  size_t accepted = 0;
  size_t rejected = 0;
  bool fatal = false;
};

using BundleCallback = std::function<void(MappedBundle&)>;
using RejectionCallback = std::function<void(Rejection&)>;

struct CompiledSpec;

class SpecLibrary {
 public:
  ~SpecLibrary();
  // Loads and checks every spec. An Error names the spec file and line of the first problem
  // (unknown source path, unknown target element, unknown transform or ConceptMap).
  static Result<std::unique_ptr<SpecLibrary>> load(const LoadOptions& options);
  // Loads one spec file (tests, tools). The ConceptMaps, ValueSets and R4 definitions of the
  // options' folders are read on the first call for those folders and kept for the process.
  static Result<std::unique_ptr<SpecLibrary>> loadFile(const std::string& path, const LoadOptions& options);

  bool has(const std::string& spec_id) const;
  std::vector<std::string> ids() const;

  struct Shared;  // translation tables shared by the compiled specs (engine.cc)

  // Maps `input` with spec `spec_id`. An Error only for an unknown spec id; data problems are
  // Rejections.
  Result<MapSummary> mapSource(const std::string& spec_id, std::istream& input, const MapOptions& options,
                               const BundleCallback& on_bundle, const RejectionCallback& on_rejection) const;

  // Maps one record already read (an event posted over HTTP: a JSON object, or a message from
  // readers::hl7v2::Hl7v2Reader) with spec `spec_id`; `raw` is its exact bytes (the Provenance
  // digest). True with `out` filled (warnings included), or false with the errors in `issues`;
  // a JSON record without "@line" gets plain JSON-path locations (`$.billing[0].code`).
  // Does not validate (options.validator is ignored). An Error only for an unknown spec id.
  Result<bool> mapRecord(const std::string& spec_id, const json::Value& record, const std::string& raw,
                         const std::string& position, const MapOptions& options, MappedBundle& out,
                         IssueList& issues) const;

 private:
  SpecLibrary();
  std::shared_ptr<Shared> shared_;  // loadFile's libraries share one per set of folders
  std::map<std::string, std::unique_ptr<CompiledSpec>> specs_;
};

}  // namespace fhir::mappers::engine
