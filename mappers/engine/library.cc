// SPDX-License-Identifier: Apache-2.0
// The spec library: loading specs, alignment ValueSets and ConceptMaps.

#include "mappers/engine/compiler.h"
#include "mappers/engine/runtime.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "conformance/definitions/registry.h"
#include "conformance/terminology/terminology.h"
#include "mappers/common/dates.h"
#include "conformance/common/ids.h"
#include "mappers/engine/fhir_paths.h"
#include "mappers/engine/spec_json.h"
#include "mappers/readers/csv/csv_reader.h"
#include "mappers/readers/hl7v2/hl7v2_reader.h"
#include "mappers/readers/ndjson/ndjson_reader.h"
#include "mappers/readers/x12/x12_reader.h"
#include "gateway_paths.h"

namespace fhir::mappers::engine {

namespace readers = ::fhir::mappers::readers;

// The alignment ValueSets, expanded by conformance/terminology (the validator's expansion: codes
// of compose.include concepts and of whole local CodeSystems, with ordinalValue extensions), by id.
Status loadValueSets(const std::string& dir, const std::string& core_dir, SpecLibrary::Shared& shared) {
  auto registry = definitions::Registry::load(core_dir, {dir});
  if (!registry.ok()) return Error{registry.message()};
  terminology::Terminology terminology(**registry);
  for (const json::Value* resource : (*registry)->extraResources(definitions::ResourceKind::kValueSet)) {
    std::string id(json::getString(*resource, "id").value_or(""));
    const json::Value* compose = json::find(*resource, "compose");
    const json::Value* includes = compose ? json::find(*compose, "include") : nullptr;
    if (!includes || !includes->IsArray()) continue;
    const terminology::Expansion& expansion = terminology.expand(json::getString(*resource, "url").value_or(""));
    ValueSetCodes codes;
    codes.name = id;
    codes.codes.insert(expansion.codes.begin(), expansion.codes.end());
    codes.codes.insert(expansion.bare_codes.begin(), expansion.bare_codes.end());
    codes.ordinals.insert(expansion.ordinals.begin(), expansion.ordinals.end());
    shared.value_sets.emplace(id, std::move(codes));
  }
  return Status::Ok();
}

// The dependsOn translations of a ConceptMap that has them: "dependsOn value\x1fcode" -> targets.
static void addDependentTranslation(const json::Value& doc, SpecLibrary::Shared& shared) {
  const json::Value* groups = json::find(doc, "group");
  if (!groups || !groups->IsArray()) return;
  DependentTranslation translation;
  translation.name = std::string(json::getString(doc, "id").value_or(""));
  for (const json::Value& group : groups->GetArray()) {
    const json::Value* elements = json::find(group, "element");
    if (!elements || !elements->IsArray()) continue;
    for (const json::Value& element : elements->GetArray()) {
      std::string code(json::getString(element, "code").value_or(""));
      const json::Value* targets = json::find(element, "target");
      if (!targets || !targets->IsArray()) continue;
      for (const json::Value& target : targets->GetArray()) {
        const json::Value* depends = json::find(target, "dependsOn");
        if (!depends || !depends->IsArray()) continue;
        for (const json::Value& condition : depends->GetArray()) {
          std::string value(json::getString(condition, "value").value_or(""));
          translation.targets[value + '\x1f' + code].insert(std::string(json::getString(target, "code").value_or("")));
        }
      }
    }
  }
  if (!translation.targets.empty()) shared.dependent.emplace(translation.name, std::move(translation));
}

Status loadConceptMaps(const std::string& dir, SpecLibrary::Shared& shared) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("ConceptMap-", 0) != 0 || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto doc = json::parse(text.str());
    if (!doc.ok()) return Error{entry.path().string() + ": " + doc.message()};
    addDependentTranslation(*doc, shared);
    auto id = json::getString(*doc, "id");
    std::string map_id = id ? std::string(*id) : name.substr(11, name.size() - 16);
    const json::Value* groups = json::find(*doc, "group");
    if (!groups || !groups->IsArray()) continue;
    // "id" translates through the groups in turn (a chain: lakeshore P -> paid -> complete is
    // two maps, named "id" for the first group and "id#2" for the second).
    size_t group_index = 0;
    for (const json::Value& group : groups->GetArray()) {
      ++group_index;
      Translation translation;
      translation.name = map_id + (group_index == 1 ? "" : "#" + std::to_string(group_index));
      const json::Value* elements = json::find(group, "element");
      if (!elements || !elements->IsArray()) continue;
      for (const json::Value& element : elements->GetArray()) {
        auto code = json::getString(element, "code");
        const json::Value* targets = json::find(element, "target");
        if (!code || !targets || !targets->IsArray() || targets->Empty()) continue;
        auto target = json::getString((*targets)[0], "code");
        if (target) translation.codes.emplace(std::string(*code), std::string(*target));
      }
      shared.translations.emplace(translation.name, std::move(translation));
    }
  }
  if (error) return Error{"cannot read " + dir + ": " + error.message()};
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------

SpecLibrary::SpecLibrary() : shared_(std::make_shared<Shared>()) {}
SpecLibrary::~SpecLibrary() = default;

namespace {

struct Dirs {
  std::string specs, alignment, core;
};

Dirs dirsOf(const LoadOptions& options) {
  Dirs dirs;
  dirs.specs = options.specs_dir.empty() ? std::string(GATEWAY_SPECS_DIR) : options.specs_dir;
  dirs.alignment = options.alignment_dir.empty() ? std::string(GATEWAY_PROFILES_DIR) + "/alignment/package" : options.alignment_dir;
  dirs.core = options.core_dir.empty() ? std::string(GATEWAY_PROFILES_DIR) + "/r4-core/package" : options.core_dir;
  return dirs;
}

Result<std::unique_ptr<CompiledSpec>> compileFile(const std::string& path, SpecLibrary::Shared& shared, FhirPaths& paths) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path};
  std::ostringstream text;
  text << in.rdbuf();
  auto document = SpecDocument::parse(text.str());
  if (!document.ok()) return Error{path + ":" + document.message()};
  auto spec = std::make_unique<CompiledSpec>();
  spec->document = std::move(*document);
  spec->file = path;
  Compiler compiler(*spec, shared, paths);
  Status status = compiler.compile();
  if (!status.ok()) return Error{status.message()};
  // Run::map() writes resourceType, id and meta before the rules.
  for (ResourceProgram& program : spec->resources) linkSiblingRules(program.rules, {"resourceType", "id", "meta"});
  linkSiblingRules(spec->provenance_agent);
  return spec;
}

}  // namespace

Result<std::unique_ptr<SpecLibrary>> SpecLibrary::loadFile(const std::string& path, const LoadOptions& options) {
  // The translation tables and the R4 paths of one set of folders are read once per process and
  // shared by every library loadFile makes from them (compiling only reads the tables; the
  // paths cache what they read, under the mutex). A caller compiling many single specs (the
  // spec_loader fuzz target, editors' checks) then pays for the folders once.
  struct Tables {
    explicit Tables(const std::string& core) : paths(core) {}
    std::shared_ptr<Shared> shared = std::make_shared<Shared>();
    FhirPaths paths;
    std::mutex mutex;
  };
  static std::mutex cache_mutex;
  static std::map<std::string, std::shared_ptr<Tables>> cache;
  Dirs dirs = dirsOf(options);
  const std::string key = dirs.alignment + '\n' + dirs.core;
  std::shared_ptr<Tables> tables;
  {
    std::lock_guard lock(cache_mutex);
    auto found = cache.find(key);
    if (found != cache.end()) {
      tables = found->second;
    } else {
      auto fresh = std::make_shared<Tables>(dirs.core);
      if (Status status = loadConceptMaps(dirs.alignment, *fresh->shared); !status.ok()) return Error{status.message()};
      if (Status status = loadValueSets(dirs.alignment, dirs.core, *fresh->shared); !status.ok()) return Error{status.message()};
      tables = cache[key] = fresh;
    }
  }
  std::unique_ptr<SpecLibrary> library(new SpecLibrary());
  library->shared_ = tables->shared;
  std::lock_guard lock(tables->mutex);
  auto spec = compileFile(path, *library->shared_, tables->paths);
  if (!spec.ok()) return spec.error();
  std::string id = (*spec)->id;
  library->specs_.emplace(id, std::move(*spec));
  return library;
}

Result<std::unique_ptr<SpecLibrary>> SpecLibrary::load(const LoadOptions& options) {
  Dirs dirs = dirsOf(options);
  std::unique_ptr<SpecLibrary> library(new SpecLibrary());
  if (Status status = loadConceptMaps(dirs.alignment, *library->shared_); !status.ok()) return Error{status.message()};
  if (Status status = loadValueSets(dirs.alignment, dirs.core, *library->shared_); !status.ok()) return Error{status.message()};
  FhirPaths paths(dirs.core);
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dirs.specs, error)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().string());
  }
  if (error) return Error{"cannot read " + dirs.specs + ": " + error.message()};
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    auto spec = compileFile(file, *library->shared_, paths);
    if (!spec.ok()) return spec.error();
    std::string id = (*spec)->id;
    if (library->specs_.count(id)) return Error{file + ": spec id " + id + " is used twice"};
    library->specs_.emplace(id, std::move(*spec));
  }
  return library;
}

bool SpecLibrary::has(const std::string& spec_id) const { return specs_.count(spec_id) > 0; }

std::vector<std::string> SpecLibrary::ids() const {
  std::vector<std::string> out;
  for (const auto& [id, spec] : specs_) out.push_back(id);
  return out;
}

}  // namespace fhir::mappers::engine
