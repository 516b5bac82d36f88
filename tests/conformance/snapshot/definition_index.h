// SPDX-License-Identifier: Apache-2.0
#pragma once

// Test-only index of conformance resources by canonical URL, with a snapshot::Resolver that
// generates snapshots on demand for StructureDefinitions that have only a differential (or whose
// published snapshot a test asked to ignore), so profile-on-profile chains run through the
// generator.

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "conformance/json/json.h"
#include "conformance/snapshot/snapshot.h"

namespace fhir::testing {

class DefinitionIndex {
 public:
  // Adds every *.json file of `folder` that is a StructureDefinition (others are skipped).
  // Returns the canonical URLs added.
  std::vector<std::string> addFolder(const std::filesystem::path& folder);
  // Adds one parsed StructureDefinition (takes ownership). Returns its URL.
  std::string add(json::Document definition);

  // Treat `url` as differential-only: its published snapshot is never handed out.
  void ignorePublishedSnapshot(const std::string& url) { regenerate_.insert(url); }

  // The raw definition as loaded (with its published snapshot, if any).
  const json::Value* published(const std::string& url) const;

  // The definition with a snapshot: published, or generated from the differential (cached).
  // nullptr when unknown or generation failed (the error is kept in lastError()).
  const json::Value* withSnapshot(std::string_view canonical);
  const std::string& lastError() const { return last_error_; }

  snapshot::Resolver resolver() {
    return [this](std::string_view canonical) { return withSnapshot(canonical); };
  }

 private:
  std::map<std::string, std::unique_ptr<json::Document>, std::less<>> loaded_;
  std::map<std::string, std::unique_ptr<json::Document>, std::less<>> generated_;
  std::set<std::string, std::less<>> regenerate_;
  std::set<std::string, std::less<>> in_progress_;
  std::string last_error_;
};

// The R4 core package folder (fhir_profiles/r4-core/package).
std::filesystem::path corePackageDir();

}  // namespace fhir::testing
