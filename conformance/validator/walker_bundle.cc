// SPDX-License-Identifier: Apache-2.0
// Bundle rules: entry fullUrl against the resource id, and reference resolution inside document
// and other Bundles.
#include "conformance/validator/instance_walker.h"

#include "conformance/validator/validator_impl.h"
#include "conformance/validator/walker_util.h"

namespace fhir::validator {

void InstanceWalker::checkBundle(const json::Value& bundle) {
  if (const json::Value* links = json::find(bundle, "link"); links && links->IsArray()) {
    std::vector<std::string_view> seen;
    for (rapidjson::SizeType index = 0; index < links->Size(); ++index) {
      auto relation = json::getString((*links)[index], "relation");
      if (!relation) continue;
      if (std::find(seen.begin(), seen.end(), *relation) != seen.end()) {
        reportAt(Severity::kError, "invalid", path_ + ".link[" + std::to_string(index) + "]",
                 "The link relationship type '" + std::string(*relation) + "' can only occur once");
      }
      seen.push_back(*relation);
    }
  }
  bool searchset = json::getString(bundle, "type") == "searchset";
  const json::Value* entries = json::find(bundle, "entry");
  if (!entries || !entries->IsArray()) return;
  size_t base = path_.size();
  for (rapidjson::SizeType index = 0; index < entries->Size(); ++index) {
    const json::Value& entry = (*entries)[index];
    if (!entry.IsObject()) continue;
    path_ += ".entry";
    appendIndex(path_, index);
    auto full_url = json::getString(entry, "fullUrl");
    const json::Value* resource = json::find(entry, "resource");
    if (searchset && resource && resource->IsObject()) {
      const json::Value* search = json::find(entry, "search");
      auto mode = search && search->IsObject() ? json::getString(*search, "mode") : std::nullopt;
      if (mode == "match" && !json::find(*resource, "id")) {
        reportAt(Severity::kError, "invalid", path_ + ".resource", "Search results must have ids");
      }
      if (mode == "outcome" && json::getString(*resource, "resourceType") != "OperationOutcome") {
        reportAt(Severity::kError, "invalid", path_ + ".resource",
                 "This is not an OperationOutcome (" +
                     std::string(json::getString(*resource, "resourceType").value_or("")) + ")");
      }
    }
    if (full_url && !isAbsoluteUrl(*full_url)) {
      report(Severity::kError, "invalid",
             "The fullUrl must be an absolute URL (not '" + std::string(*full_url) + "')");
    } else if (full_url && resource && resource->IsObject() &&
               full_url->compare(0, 4, "urn:") != 0) {
      auto id = json::getString(*resource, "id");
      auto type = json::getString(*resource, "resourceType");
      std::string_view url = *full_url;
      size_t history = url.find("/_history/");
      if (history != std::string_view::npos) url = url.substr(0, history);
      size_t slash = url.rfind('/');
      std::string_view url_id = slash == std::string_view::npos ? url : url.substr(slash + 1);
      std::string_view rest = slash == std::string_view::npos ? std::string_view() : url.substr(0, slash);
      size_t type_slash = rest.rfind('/');
      std::string_view url_type = type_slash == std::string_view::npos ? rest : rest.substr(type_slash + 1);
      if (id && type && url_type == *type && url_id != *id) {
        report(Severity::kError, "invalid",
               "Resource ID does not match the ID in the entry full URL ('" + std::string(*id) +
                   "' vs '" + std::string(*full_url) + "')");
      }
    }
    path_.resize(base);
  }
  checkBundleReferences(*entries, json::getString(bundle, "type") == "document");
}

namespace {

// Collects (path, reference) pairs below `value`, `path` being the FHIRPath-like location.
void collectReferences(const json::Value& value, std::string& path,
                       std::vector<std::pair<std::string, std::string_view>>& out) {
  if (value.IsArray()) {
    size_t base = path.size();
    for (rapidjson::SizeType index = 0; index < value.Size(); ++index) {
      path += "[" + std::to_string(index) + "]";
      collectReferences(value[index], path, out);
      path.resize(base);
    }
    return;
  }
  if (!value.IsObject()) return;
  for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
    std::string_view name(it->name.GetString(), it->name.GetStringLength());
    if (name == "contained" || name.empty() || name[0] == '_') continue;
    if (name == "reference" && json::isString(it->value)) {
      out.emplace_back(path, json::stringView(it->value));
      continue;
    }
    if (!it->value.IsObject() && !it->value.IsArray()) continue;
    size_t base = path.size();
    path += ".";
    path += name;
    collectReferences(it->value, path, out);
    path.resize(base);
  }
}

}  // namespace

void InstanceWalker::checkBundleReferences(const json::Value& entries, bool document) {
  // Local resolution: urn: references must name an entry's fullUrl; in a document every
  // relative [type]/[id] reference must resolve to an entry too.
  std::vector<std::string_view> full_urls;
  struct Target {
    std::string type_id;         // "Observation/1"
    std::string_view full_url;
    std::string_view version;    // meta.versionId
  };
  std::vector<Target> targets;
  for (const json::Value& entry : entries.GetArray()) {
    if (!entry.IsObject()) continue;
    auto full_url = json::getString(entry, "fullUrl");
    if (full_url) full_urls.push_back(*full_url);
    if (const json::Value* resource = json::find(entry, "resource"); resource && resource->IsObject()) {
      auto type = json::getString(*resource, "resourceType");
      auto id = json::getString(*resource, "id");
      Target target;
      if (type && id) target.type_id = std::string(*type) + "/" + std::string(*id);
      target.full_url = full_url.value_or("");
      if (const json::Value* meta = json::find(*resource, "meta"); meta && meta->IsObject()) {
        target.version = json::getString(*meta, "versionId").value_or("");
      }
      targets.push_back(std::move(target));
    }
  }
  for (rapidjson::SizeType index = 0; index < entries.Size(); ++index) {
    const json::Value* resource = entries[index].IsObject() ? json::find(entries[index], "resource") : nullptr;
    if (!resource || !resource->IsObject()) continue;
    std::string path = path_ + ".entry[" + std::to_string(index) + "].resource";
    std::vector<std::pair<std::string, std::string_view>> references;
    collectReferences(*resource, path, references);
    for (const auto& [where, reference] : references) {
      if (reference.empty() || reference[0] == '#') continue;
      bool urn = reference.compare(0, 4, "urn:") == 0;
      bool relative = !urn && reference.find("://") == std::string_view::npos;
      if (!urn && !(document && relative)) continue;
      bool found = std::find(full_urls.begin(), full_urls.end(), reference) != full_urls.end();
      if (!found && relative) {
        // R4 Bundle "Resolving references in Bundles": a version-specific reference matches
        // without its version, then on Resource.meta.versionId.
        size_t history = reference.find("/_history/");
        std::string_view key = reference.substr(0, history);
        std::string_view version =
            history == std::string_view::npos ? std::string_view() : reference.substr(history + 10);
        for (const Target& target : targets) {
          std::string_view url = target.full_url;
          bool same = target.type_id == key ||
                      (url.size() > key.size() && url.compare(url.size() - key.size(), key.size(), key) == 0 &&
                       url[url.size() - key.size() - 1] == '/');
          found = found || (same && (version.empty() || target.version == version));
        }
      }
      if (!found) {
        // In a document every reference must resolve; elsewhere (as the reference validator's
        // default policy) an unresolved urn: reference is a warning.
        reportAt(document ? Severity::kError : Severity::kWarning, "invalid", where,
                 "Can't find '" + std::string(reference) + "' in the bundle");
      }
    }
  }
}

}  // namespace fhir::validator
