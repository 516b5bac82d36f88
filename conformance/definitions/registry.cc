// SPDX-License-Identifier: Apache-2.0
#include "conformance/definitions/registry.h"

#include <array>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <sstream>

#include "conformance/definitions/package_archive.h"

namespace fhir::definitions {

namespace fs = std::filesystem;

struct Registry::Entry {
  std::string file;  // empty for resources parsed at load time
  std::once_flag once;
  std::unique_ptr<json::Document> doc;
  bool ok = false;
  int package = -1;  // index into packages_; -1 for core

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
  if (resource_type == "SearchParameter") return ResourceKind::kSearchParameter;
  if (resource_type == "ImplementationGuide") return ResourceKind::kImplementationGuide;
  if (resource_type == "Measure") return ResourceKind::kMeasure;
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

// Semantic-version order on the dot-separated numeric parts ("6.1.0" > "3.1.1" > "3.1.0");
// non-numeric parts compare as text.
int compareVersions(std::string_view a, std::string_view b) {
  while (!a.empty() || !b.empty()) {
    size_t da = a.find('.'), db = b.find('.');
    std::string_view pa = a.substr(0, da), pb = b.substr(0, db);
    bool na = !pa.empty() && pa.find_first_not_of("0123456789") == std::string_view::npos;
    bool nb = !pb.empty() && pb.find_first_not_of("0123456789") == std::string_view::npos;
    if (na && nb) {
      if (pa.size() != pb.size()) return pa.size() < pb.size() ? -1 : 1;
    }
    if (int c = pa.compare(pb); c != 0) return c < 0 ? -1 : 1;
    a = da == std::string_view::npos ? std::string_view() : a.substr(da + 1);
    b = db == std::string_view::npos ? std::string_view() : b.substr(db + 1);
  }
  return 0;
}

bool sameMinor(std::string_view a, std::string_view b) {
  auto minor = [](std::string_view v) {
    size_t first = v.find('.');
    size_t second = first == std::string_view::npos ? first : v.find('.', first + 1);
    return v.substr(0, second);
  };
  return !a.empty() && minor(a) == minor(b);
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
    if (!kind || *kind == ResourceKind::kQuestionnaire || *kind == ResourceKind::kImplementationGuide ||
        *kind == ResourceKind::kMeasure) {
      continue;
    }
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
    // (name, text) of every file of the package.
    std::vector<std::pair<std::string, std::string>> texts;
    std::string manifest;  // package.json
    bool tarball = extra.size() > 4 && (extra.compare(extra.size() - 4, 4, ".tgz") == 0 ||
                                        (extra.size() > 7 && extra.compare(extra.size() - 7, 7, ".tar.gz") == 0));
    if (tarball && fs::is_regular_file(extra, ec)) {
      auto files = readTarGz(extra, ".json");
      if (!files.ok()) return files.error();
      for (ArchiveFile& file : *files) {
        std::string_view name = file.path;
        if (name.rfind("./", 0) == 0) name.remove_prefix(2);
        // The package's own resources sit directly under package/ (not example/, other/ ...).
        if (name.rfind("package/", 0) != 0 || name.find('/', 8) != std::string_view::npos) continue;
        std::string_view base = name.substr(8);
        if (base == "package.json") {
          manifest = std::move(file.content);
        } else if (base != ".index.json") {
          texts.emplace_back(extra + ":" + std::string(name), std::move(file.content));
        }
      }
    } else if (fs::is_directory(extra, ec)) {
      std::vector<fs::path> files;
      collectJsonFiles(extra, files);
      for (const fs::path& file : files) {
        auto text = readWhole(file);
        if (!text.ok()) return text.error();
        texts.emplace_back(file.string(), std::move(*text));
      }
      for (const fs::path& candidate : {fs::path(extra) / "package.json", fs::path(extra) / "package" / "package.json"}) {
        if (!manifest.empty() || !fs::is_regular_file(candidate, ec)) continue;
        if (auto text = readWhole(candidate); text.ok()) manifest = std::move(*text);
      }
    } else if (fs::is_regular_file(extra, ec)) {
      auto text = readWhole(extra);
      if (!text.ok()) return text.error();
      texts.emplace_back(extra, std::move(*text));
    } else {
      return Error{"cannot read " + extra};
    }
    const int package_index = static_cast<int>(registry->packages_.size());
    Package package;
    package.source = extra;
    if (!manifest.empty()) {
      json::Document doc;
      json::ParseError error;
      if (!json::parse(manifest, doc, error) || !doc.IsObject()) {
        return Error{extra + ": package.json: " + error.describe()};
      }
      package.name = std::string(json::getString(doc, "name").value_or(""));
      package.version = std::string(json::getString(doc, "version").value_or(""));
      if (const json::Value* dependencies = json::find(doc, "dependencies"); dependencies && dependencies->IsObject()) {
        for (auto it = dependencies->MemberBegin(); it != dependencies->MemberEnd(); ++it) {
          package.dependencies.emplace_back(std::string(json::stringView(it->name)),
                                            json::isString(it->value) ? std::string(json::stringView(it->value)) : "");
        }
      }
    }
    registry->packages_.push_back(std::move(package));
    registry->package_urls_.emplace_back();
    for (auto& [file, text] : texts) {
      auto doc = std::make_unique<json::Document>();
      json::ParseError error;
      if (!json::parse(text, *doc, error)) {
        return Error{file + ": " + error.describe()};
      }
      if (!doc->IsObject()) continue;
      auto type = json::getString(*doc, "resourceType");
      auto url = json::getString(*doc, "url");
      if (!type || !url) continue;
      auto kind = kindOf(*type);
      if (!kind) continue;
      auto entry = std::make_unique<Entry>();
      entry->doc = std::move(doc);
      entry->package = package_index;
      std::string key(*url);
      // The unversioned key names the highest version loaded (US Core 6.1 over 3.1 whatever the
      // order of the paths); equal versions: the path given last.
      Entry*& current = registry->by_url_[kindIndex(*kind)][key];
      if (!current || current->package < 0 || !current->doc ||
          compareVersions(json::getString(*entry->doc, "version").value_or(""),
                          json::getString(*current->doc, "version").value_or("")) >= 0) {
        current = entry.get();
      }
      registry->package_urls_.back()[kindIndex(*kind)][key] = entry.get();
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
  if (kind != ResourceKind::kValueSet && kind != ResourceKind::kCodeSystem &&
      kind != ResourceKind::kSearchParameter) {
    return nullptr;
  }
  // Core terminology and search parameters: guess the file from the last URL segment, check
  // the URL.
  const auto& by_id = core_by_id_[kindIndex(kind)];
  if (auto it = by_id.find(std::string(lastSegment(url))); it != by_id.end()) {
    if (const json::Value* value = it->second->get()) {
      if (json::getString(*value, "url") == url) return value;
    }
  }
  if (kind == ResourceKind::kSearchParameter) return coreSearchParameter(url);
  std::call_once(scan_once_, [this] { scanCoreTerminology(); });
  const auto& scanned = scanned_[kindIndex(kind)];
  if (auto it = scanned.find(std::string(url)); it != scanned.end()) return it->second->get();
  return nullptr;
}

namespace {

// url -> file id, per kind, for one core folder. The core package does not change while the
// process runs, so the scan is shared by every registry over the same folder.
using ScanIndex = std::unordered_map<std::string, std::string>;

std::shared_ptr<const std::array<ScanIndex, kResourceKinds>> scanFolder(
    const std::string& dir, const std::unordered_map<std::string, Registry::Entry*> (&by_id)[kResourceKinds],
    const std::function<std::string(const Registry::Entry&)>& file_of) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const std::array<ScanIndex, kResourceKinds>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(dir); it != cache.end()) return it->second;
  auto index = std::make_shared<std::array<ScanIndex, kResourceKinds>>();
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
  for (int kind_index = 0; kind_index < kResourceKinds; ++kind_index) {
    for (const auto& [url, id] : (*index)[kind_index]) {
      if (auto it = core_by_id_[kind_index].find(id); it != core_by_id_[kind_index].end()) {
        scanned_[kind_index].emplace(url, it->second);
      }
    }
  }
}

const json::Value* Registry::coreSearchParameter(std::string_view url) const {
  std::call_once(search_once_, [this] {
    fs::path dir(core_dir_);
    if (!dir.has_filename()) dir = dir.parent_path();  // "…/package/"
    auto text = readWhole(dir.parent_path() / "search-parameters.json");
    if (!text.ok()) return;
    auto doc = std::make_unique<json::Document>();
    json::ParseError error;
    if (!json::parse(*text, *doc, error) || !doc->IsObject()) return;
    if (const json::Value* entries = json::find(*doc, "entry"); entries && entries->IsArray()) {
      for (const json::Value& entry : entries->GetArray()) {
        const json::Value* resource = entry.IsObject() ? json::find(entry, "resource") : nullptr;
        if (!resource || !resource->IsObject()) continue;
        if (auto key = json::getString(*resource, "url")) search_by_url_.emplace(std::string(*key), resource);
      }
    }
    search_bundle_ = std::move(doc);
  });
  auto it = search_by_url_.find(std::string(url));
  return it == search_by_url_.end() ? nullptr : it->second;
}

std::vector<const json::Value*> Registry::extraResources(ResourceKind kind) const {
  std::vector<const json::Value*> out;
  for (const auto& entry : entries_) {
    if (entry->package < 0 || !entry->doc) continue;
    if (kindOf(json::getString(*entry->doc, "resourceType").value_or("")) != kind) continue;
    out.push_back(entry->doc.get());
  }
  return out;
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

int Registry::packageOf(ResourceKind kind, std::string_view canonical) const {
  Entry* entry = lookup(kind, canonical);
  if (!entry) entry = lookup(kind, canonicalUrl(canonical));
  return entry ? entry->package : -1;
}

std::string Registry::resolveIn(ResourceKind kind, std::string_view url, int package) const {
  if (package < 0 || package >= static_cast<int>(packages_.size()) ||
      url.find('|') != std::string_view::npos) {
    return std::string(url);
  }
  auto keyOf = [&](int index) -> std::string {
    const auto& map = package_urls_[static_cast<size_t>(index)][kindIndex(kind)];
    auto it = map.find(std::string(url));
    if (it == map.end()) return {};
    auto version = it->second->doc ? json::getString(*it->second->doc, "version") : std::nullopt;
    return version ? std::string(url) + "|" + std::string(*version) : std::string(url);
  };
  if (std::string key = keyOf(package); !key.empty()) return key;
  // Then the loaded packages it depends on, preferring the version it names.
  for (const auto& [name, version] : packages_[static_cast<size_t>(package)].dependencies) {
    // The version it names, else the same major.minor (CARIN BB 2.0 names US Core 3.1.1 and
    // 3.1.0 is loaded), else the highest loaded.
    int best = -1, rank = 0;
    for (size_t index = 0; index < packages_.size(); ++index) {
      const Package& candidate = packages_[index];
      if (candidate.name != name) continue;
      int candidate_rank = candidate.version == version ? 3 : sameMinor(candidate.version, version) ? 2 : 1;
      if (candidate_rank > rank ||
          (candidate_rank == rank && compareVersions(candidate.version, packages_[static_cast<size_t>(best)].version) > 0)) {
        best = static_cast<int>(index);
        rank = candidate_rank;
      }
    }
    if (best < 0) continue;
    if (std::string key = keyOf(best); !key.empty()) return key;
  }
  return std::string(url);
}

std::vector<std::pair<std::string, const void*>> Registry::structureDefinitionKeys() const {
  std::vector<std::pair<std::string, const void*>> keys;
  for (const auto& [url, entry] : by_url_[kindIndex(ResourceKind::kStructureDefinition)]) {
    keys.emplace_back(url, entry);
  }
  return keys;
}

namespace {

// Canonical references a conformance resource makes to other conformance resources.
void collectCanonicals(const json::Value& value, std::string_view key, std::set<std::string>& out) {
  if (value.IsObject()) {
    for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
      collectCanonicals(it->value, json::stringView(it->name), out);
    }
  } else if (value.IsArray()) {
    for (const json::Value& item : value.GetArray()) collectCanonicals(item, key, out);
  } else if (json::isString(value) &&
             (key == "valueSet" || key == "profile" || key == "targetProfile" || key == "baseDefinition")) {
    out.emplace(json::stringView(value));
  }
}

}  // namespace

std::vector<std::string> Registry::missingDependencies() const {
  std::vector<std::string> messages;
  for (size_t index = 0; index < packages_.size(); ++index) {
    const Package& package = packages_[index];
    std::vector<std::string> missing;
    for (const auto& [name, version] : package.dependencies) {
      if (name == "hl7.fhir.r4.core") continue;  // the core package is always loaded
      bool same = false, other = false;
      std::string loaded;
      for (const Package& candidate : packages_) {
        if (candidate.name != name) continue;
        if (candidate.version == version) same = true;
        other = true;
        loaded = candidate.version;
      }
      if (same) continue;
      missing.push_back(other ? name + "#" + version + " (loaded: " + loaded + ")" : name + "#" + version);
    }
    if (missing.empty()) continue;
    // What goes unchecked: the canonicals the package refers to that resolve nowhere.
    std::set<std::string> referenced;
    for (int kind = 0; kind < kResourceKinds; ++kind) {
      for (const auto& [url, entry] : package_urls_[index][kind]) {
        if (entry->doc) collectCanonicals(*entry->doc, "", referenced);
      }
    }
    std::vector<std::string> unresolved;
    for (const std::string& canonical : referenced) {
      bool found = false;
      for (ResourceKind kind : {ResourceKind::kStructureDefinition, ResourceKind::kValueSet, ResourceKind::kCodeSystem}) {
        found = found || find(kind, canonical) != nullptr;
      }
      if (!found) unresolved.push_back(canonical);
    }
    std::string message = (package.name.empty() ? package.source : package.name + "#" + package.version) +
                           " depends on packages that are not loaded: ";
    for (size_t at = 0; at < missing.size(); ++at) message += (at ? ", " : "") + missing[at];
    message += "; " + std::to_string(unresolved.size()) +
               " canonical references of the package resolve nowhere and go unchecked";
    for (size_t at = 0; at < unresolved.size(); ++at) message += (at ? ", " : ": ") + unresolved[at];
    messages.push_back(std::move(message));
  }
  return messages;
}

}  // namespace fhir::definitions
