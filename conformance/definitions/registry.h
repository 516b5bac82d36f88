// SPDX-License-Identifier: Apache-2.0
#pragma once

// Conformance resources (StructureDefinition, ValueSet, CodeSystem) by canonical URL.
//
// Loading is cheap: the core package is indexed from its file names only
// (`StructureDefinition-<id>.json` and friends) and each file is parsed on first use, once,
// under a std::once_flag. Extra paths (package folders or single JSON files, typically a few
// dozen IG resources) are parsed eagerly at load time. After load() the index itself is
// immutable, so lookups from many threads take no lock once a resource has been parsed.
//
// Core ValueSet/CodeSystem URLs are guessed from the file id (the last URL segment); when the
// guess misses, a full scan of the core terminology files builds the exact URL index once.

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"

namespace fhir::definitions {

// Questionnaires, ImplementationGuides and Measures come from extra paths only
// (QuestionnaireResponse validation, global profiles, MeasureReport checks). SearchParameters
// come from extra paths, the core package folder and the core `search-parameters.json` Bundle
// beside it (every R4 search parameter, trimmed: see fhir_profiles/r4-core/SOURCE.md).
enum class ResourceKind {
  kStructureDefinition,
  kValueSet,
  kCodeSystem,
  kQuestionnaire,
  kSearchParameter,
  kImplementationGuide,
  kMeasure,
};
inline constexpr int kResourceKinds = 7;

class Registry {
 public:
  // `core_dir`: folder with the R4 core package files. `extra_paths`: package folders (every
  // *.json inside, recursively through `package/` if present), FHIR NPM package tarballs
  // (`.tgz`: the JSON files directly under `package/`, not its examples) or single JSON files.
  // Files of other resource types than ResourceKind names are ignored.
  // Error: unreadable core folder, or an extra file that does not parse.
  //
  // Each extra path is one package (its package.json gives name, version and dependencies).
  // A resource is indexed by `url` (the package loaded last wins) and by `url|version`;
  // resolveIn() scopes an unversioned canonical to the package that refers to it.
  static Result<std::unique_ptr<Registry>> load(const std::string& core_dir,
                                               const std::vector<std::string>& extra_paths);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The resource for `canonical` (`url` or `url|version`), or nullptr when unknown or when its
  // file does not parse. The returned value lives as long as the registry.
  const json::Value* find(ResourceKind kind, std::string_view canonical) const;

  const json::Value* structureDefinition(std::string_view canonical) const {
    return find(ResourceKind::kStructureDefinition, canonical);
  }
  const json::Value* valueSet(std::string_view canonical) const {
    return find(ResourceKind::kValueSet, canonical);
  }
  const json::Value* codeSystem(std::string_view canonical) const {
    return find(ResourceKind::kCodeSystem, canonical);
  }

  // The core StructureDefinition URL for a type name ("Patient" ->
  // "http://hl7.org/fhir/StructureDefinition/Patient"); empty when no such file exists.
  std::string coreTypeUrl(std::string_view type_name) const;

  // Every StructureDefinition URL the registry can resolve (core and extra), without versions.
  std::vector<std::string> structureDefinitionUrls() const;

  // The resources of `kind` loaded from extra paths, in load order.
  std::vector<const json::Value*> extraResources(ResourceKind kind) const;

  // URLs of the StructureDefinitions loaded from extra paths.
  const std::vector<std::string>& extraStructureDefinitions() const { return extra_sds_; }

  // A loaded extra package.
  struct Package {
    std::string source;   // the path given
    std::string name;     // package.json name ("hl7.fhir.us.core"); empty when none
    std::string version;  // package.json version
    std::vector<std::pair<std::string, std::string>> dependencies;  // name, version
  };
  const std::vector<Package>& packages() const { return packages_; }
  // The package (index into packages()) that defined the resource `canonical` resolves to, or -1
  // for core and unknown resources.
  int packageOf(ResourceKind kind, std::string_view canonical) const;
  // `url` as the package `package` sees it: the `url|version` key of the resource it (or one of
  // its loaded dependencies) defines; `url` unchanged when none does, when it carries a version
  // already, or for package -1.
  std::string resolveIn(ResourceKind kind, std::string_view url, int package) const;
  // Every key (url and url|version) under which a StructureDefinition is found, with an id that
  // is the same for keys naming the same resource.
  std::vector<std::pair<std::string, const void*>> structureDefinitionKeys() const;

  // Dependencies named by loaded packages that are not loaded, with the canonical references of
  // those packages that resolve nowhere (what goes unchecked); one message per package.
  std::vector<std::string> missingDependencies() const;

  // Core package folder in use.
  const std::string& coreDir() const { return core_dir_; }

  struct Entry;

 private:
  Registry() = default;
  Entry* lookup(ResourceKind kind, std::string_view url) const;
  void scanCoreTerminology() const;
  // The core search-parameters.json Bundle, by url (parsed once, on first use).
  const json::Value* coreSearchParameter(std::string_view url) const;

  std::string core_dir_;
  // Owned entries; the maps below point into them.
  std::vector<std::unique_ptr<Entry>> entries_;
  // kind -> url -> entry (exact URLs: extra resources and core SDs).
  std::unordered_map<std::string, Entry*> by_url_[kResourceKinds];
  // kind -> id (file name stem) for core ValueSet/CodeSystem guesses.
  std::unordered_map<std::string, Entry*> core_by_id_[kResourceKinds];
  std::vector<std::string> extra_sds_;
  std::vector<Package> packages_;
  // per package: kind -> url -> entry
  std::vector<std::array<std::unordered_map<std::string, Entry*>, kResourceKinds>> package_urls_;

  mutable std::once_flag scan_once_;
  mutable std::unordered_map<std::string, Entry*> scanned_[kResourceKinds];
  mutable std::once_flag search_once_;
  mutable std::unique_ptr<json::Document> search_bundle_;
  mutable std::unordered_map<std::string, const json::Value*> search_by_url_;
};

// Strips `|version` from a canonical.
std::string_view canonicalUrl(std::string_view canonical);

}  // namespace fhir::definitions
