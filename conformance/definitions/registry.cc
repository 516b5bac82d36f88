// SPDX-License-Identifier: Apache-2.0
#include "conformance/definitions/registry.h"

#include <array>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

namespace fhir::definitions {

namespace fs = std::filesystem;

struct Registry::Entry {
  std::string file;  // empty for resources parsed at load time
  std::once_flag once;
  std::unique_ptr<json::Document> doc;
  bool ok = false;

  const json::Value* get() {
    std::call_once(once, [this] {
      if (doc) {
        ok = true;
        return;
      }
      std::ifstream in(file, std::ios::binary);
      std::stringstream buffer;
      buffer << in.rdbuf();
      auto parsed = std::make_unique<json::Document>();
      json::ParseError error;
      if (in.good() && json::parse(buffer.str(), *parsed, error) && parsed->IsObject()) {
        doc = std::move(parsed);
        ok = true;
      }
    });
    return ok ? doc.get() : nullptr;
  }
};

namespace {

constexpr std::string_view kCoreSdPrefix = "http://hl7.org/fhir/StructureDefinition/";

int kindIndex(ResourceKind kind) { return static_cast<int>(kind); }

std::optional<ResourceKind> kindOf(std::string_view resource_type) {
  if (resource_type == "StructureDefinition") return ResourceKind::kStructureDefinition;
  if (resource_type == "ValueSet") return ResourceKind::kValueSet;
  if (resource_type == "CodeSystem") return ResourceKind::kCodeSystem;
  if (resource_type == "Questionnaire") return ResourceKind::kQuestionnaire;
  return std::nullopt;
}

std::string_view lastSegment(std::string_view url) {
  size_t slash = url.find_last_of("/:");
  return slash == std::string_view::npos ? url : url.substr(slash + 1);
}

Result<std::string> readWhole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path.string()};
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void collectJsonFiles(const fs::path& root, std::vector<fs::path>& files) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const fs::path& path = it->path();
    std::string name = path.filename().string();
    if (path.extension() != ".json" || name == "package.json" || name == ".index.json") continue;
    files.push_back(path);
  }
}

}  // namespace

std::string_view canonicalUrl(std::string_view canonical) {
  size_t bar = canonical.find('|');
  return bar == std::string_view::npos ? canonical : canonical.substr(0, bar);
}

Registry::~Registry() = default;

Result<std::unique_ptr<Registry>> Registry::load(const std::string& core_dir,
                                                 const std::vector<std::string>& extra_paths) {
  std::unique_ptr<Registry> registry(new Registry());
  registry->core_dir_ = core_dir;
  std::error_code ec;
  fs::directory_iterator it(core_dir, ec);
  if (ec) return Error{"cannot read core package folder " + core_dir + ": " + ec.message()};
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    if (name.size() < 6 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
    size_t dash = name.find('-');
    if (dash == std::string::npos) continue;
    auto kind = kindOf(std::string_view(name).substr(0, dash));
    if (!kind || *kind == ResourceKind::kQuestionnaire) continue;
    std::string id = name.substr(dash + 1, name.size() - dash - 6);
    auto entry = std::make_unique<Entry>();
    entry->file = it->path().string();
    if (*kind == ResourceKind::kStructureDefinition) {
      registry->by_url_[kindIndex(*kind)].emplace(std::string(kCoreSdPrefix) + id, entry.get());
    } else {
      registry->core_by_id_[kindIndex(*kind)].emplace(id, entry.get());
    }
    registry->entries_.push_back(std::move(entry));
  }

  for (const std::string& extra : extra_paths) {
    std::vector<fs::path> files;
    if (fs::is_directory(extra, ec)) {
      collectJsonFiles(extra, files);
    } else if (fs::is_regular_file(extra, ec)) {
      files.emplace_back(extra);
    } else {
      return Error{"cannot read " + extra};
    }
    for (const fs::path& file : files) {
      auto text = readWhole(file);
      if (!text.ok()) return text.error();
      auto doc = std::make_unique<json::Document>();
      json::ParseError error;
      if (!json::parse(*text, *doc, error)) {
        return Error{file.string() + ": " + error.describe()};
      }
      if (!doc->IsObject()) continue;
      auto type = json::getString(*doc, "resourceType");
      auto url = json::getString(*doc, "url");
      if (!type || !url) continue;
      auto kind = kindOf(*type);
      if (!kind) continue;
      auto entry = std::make_unique<Entry>();
      entry->doc = std::move(doc);
      std::string key(*url);
      registry->by_url_[kindIndex(*kind)][key] = entry.get();
      if (auto version = json::getString(*entry->doc, "version")) {
        registry->by_url_[kindIndex(*kind)][key + "|" + std::string(*version)] = entry.get();
      }
      if (*kind == ResourceKind::kStructureDefinition) registry->extra_sds_.push_back(key);
      registry->entries_.push_back(std::move(entry));
    }
  }
  return registry;
}

Registry::Entry* Registry::lookup(ResourceKind kind, std::string_view url) const {
  const auto& exact = by_url_[kindIndex(kind)];
  if (auto it = exact.find(std::string(url)); it != exact.end()) return it->second;
  return nullptr;
}

const json::Value* Registry::find(ResourceKind kind, std::string_view canonical) const {
  if (Entry* entry = lookup(kind, canonical)) return entry->get();
  std::string_view url = canonicalUrl(canonical);
  if (url.size() != canonical.size()) {
    if (Entry* entry = lookup(kind, url)) return entry->get();
  }
  if (kind == ResourceKind::kStructureDefinition || kind == ResourceKind::kQuestionnaire) return nullptr;
  // Core terminology: guess the file from the last URL segment, check the URL.
  const auto& by_id = core_by_id_[kindIndex(kind)];
  if (auto it = by_id.find(std::string(lastSegment(url))); it != by_id.end()) {
    if (const json::Value* value = it->second->get()) {
      if (json::getString(*value, "url") == url) return value;
    }
  }
  std::call_once(scan_once_, [this] { scanCoreTerminology(); });
  const auto& scanned = scanned_[kindIndex(kind)];
  if (auto it = scanned.find(std::string(url)); it != scanned.end()) return it->second->get();
  return nullptr;
}

namespace {

// url -> file id, per kind, for one core folder. The core package does not change while the
// process runs, so the scan is shared by every registry over the same folder.
using ScanIndex = std::unordered_map<std::string, std::string>;

std::shared_ptr<const std::array<ScanIndex, 4>> scanFolder(
    const std::string& dir, const std::unordered_map<std::string, Registry::Entry*> (&by_id)[4],
    const std::function<std::string(const Registry::Entry&)>& file_of) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const std::array<ScanIndex, 4>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(dir); it != cache.end()) return it->second;
  auto index = std::make_shared<std::array<ScanIndex, 4>>();
  // The core files are pretty-printed with the top-level "url" indented by two spaces; files
  // written otherwise are parsed.
  for (int kind_index : {kindIndex(ResourceKind::kValueSet), kindIndex(ResourceKind::kCodeSystem)}) {
    for (const auto& [id, entry] : by_id[kind_index]) {
      auto text = readWhole(file_of(*entry));
      if (!text.ok()) continue;
      std::string_view view = *text;
      size_t at = view.find("\n  \"url\" : \"");
      if (at != std::string_view::npos) {
        size_t start = at + 12;
        size_t end = view.find('"', start);
        if (end != std::string_view::npos) {
          (*index)[kind_index].emplace(std::string(view.substr(start, end - start)), id);
          continue;
        }
      }
      json::Document doc;
      json::ParseError error;
      if (json::parse(view, doc, error) && doc.IsObject()) {
        if (auto url = json::getString(doc, "url")) (*index)[kind_index].emplace(std::string(*url), id);
      }
    }
  }
  cache.emplace(dir, index);
  return index;
}

}  // namespace

void Registry::scanCoreTerminology() const {
  auto index = scanFolder(core_dir_, core_by_id_, [](const Entry& entry) { return entry.file; });
  for (int kind_index = 0; kind_index < 4; ++kind_index) {
    for (const auto& [url, id] : (*index)[kind_index]) {
      if (auto it = core_by_id_[kind_index].find(id); it != core_by_id_[kind_index].end()) {
        scanned_[kind_index].emplace(url, it->second);
      }
    }
  }
}

std::vector<std::string> Registry::structureDefinitionUrls() const {
  std::vector<std::string> urls;
  for (const auto& [url, entry] : by_url_[kindIndex(ResourceKind::kStructureDefinition)]) {
    if (url.find('|') == std::string::npos) urls.push_back(url);
  }
  return urls;
}

std::string Registry::coreTypeUrl(std::string_view type_name) const {
  std::string url = std::string(kCoreSdPrefix) + std::string(type_name);
  return by_url_[kindIndex(ResourceKind::kStructureDefinition)].count(url) ? url : std::string();
}

}  // namespace fhir::definitions
