// SPDX-License-Identifier: Apache-2.0
#include "tests/conformance/snapshot/definition_index.h"

#include <fstream>
#include <sstream>
#include "gateway_paths.h"

namespace fhir::testing {

std::filesystem::path corePackageDir() {
  return std::filesystem::path(GATEWAY_PROFILES_DIR) / "r4-core" / "package";
}

std::vector<std::string> DefinitionIndex::addFolder(const std::filesystem::path& folder) {
  std::vector<std::string> urls;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto parsed = json::parse(text.str());
    if (!parsed) {
      last_error_ = file.string() + ": " + parsed.message();
      continue;
    }
    if (json::getString(*parsed, "resourceType") != "StructureDefinition") continue;
    urls.push_back(add(std::move(parsed.value())));
  }
  return urls;
}

std::string DefinitionIndex::add(json::Document definition) {
  std::string url(json::getString(definition, "url").value_or(""));
  auto owned = std::make_unique<json::Document>(std::move(definition));
  loaded_[url] = std::move(owned);
  return url;
}

const json::Value* DefinitionIndex::published(const std::string& url) const {
  auto found = loaded_.find(url);
  return found == loaded_.end() ? nullptr : found->second.get();
}

const json::Value* DefinitionIndex::withSnapshot(std::string_view canonical) {
  std::string_view url = canonical.substr(0, canonical.find('|'));
  auto loaded = loaded_.find(url);
  if (loaded == loaded_.end()) return nullptr;
  const json::Value& definition = *loaded->second;
  if (json::find(definition, "snapshot") != nullptr && !regenerate_.contains(url)) {
    return &definition;
  }
  if (auto cached = generated_.find(url); cached != generated_.end()) return cached->second.get();
  if (!in_progress_.insert(std::string(url)).second) {
    last_error_ = "circular baseDefinition at " + std::string(url);
    return nullptr;
  }
  json::Document stripped;
  stripped.CopyFrom(definition, stripped.GetAllocator());
  stripped.RemoveMember("snapshot");
  auto result = snapshot::generateSnapshot(stripped, resolver());
  in_progress_.erase(std::string(url));
  if (!result) {
    last_error_ = result.message();
    return nullptr;
  }
  auto owned = std::make_unique<json::Document>(std::move(result.value()));
  const json::Value* pointer = owned.get();
  generated_[std::string(url)] = std::move(owned);
  return pointer;
}

}  // namespace fhir::testing
