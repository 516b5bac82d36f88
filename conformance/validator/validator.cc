// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/validator.h"

#include <algorithm>
#include <iterator>
#include <set>
#include <tuple>

#include "conformance/definitions/registry.h"
#include "conformance/validator/instance_walker.h"
#include "conformance/validator/plan.h"
#include "conformance/validator/validator_impl.h"
#include "gateway_paths.h"

namespace fhir {

namespace validator {

ValidatorImpl::ValidatorImpl(std::unique_ptr<definitions::Registry> registry,
                             const ValidatorOptions& options)
    : registry_(std::move(registry)),
      plans_(std::make_unique<PlanCache>(*registry_)),
      terminology_(std::make_unique<terminology::Terminology>(*registry_)),
      unchecked_binding_(options.unchecked_binding),
      options_(options),
      warnings_(registry_->missingDependencies()) {
  const auto& packages = registry_->packages();
  for (const auto& package : packages) {
    for (const auto& [name, version] : package.dependencies) {
      if (name.rfind("hl7.fhir.uv.extensions", 0) != 0) continue;
      // (clang 14, the fuzz build's compiler, cannot capture a structured binding)
      const std::string& wanted = name;
      bool loaded = std::any_of(packages.begin(), packages.end(),
                                [&](const auto& other) { return other.name == wanted; });
      if (!loaded && missing_extensions_.empty()) missing_extensions_ = name + "#" + version;
    }
  }
  for (const json::Value* guide : registry_->extraResources(definitions::ResourceKind::kImplementationGuide)) {
    const json::Value* global = json::find(*guide, "global");
    if (!global || !global->IsArray()) continue;
    for (const json::Value& item : global->GetArray()) {
      if (!item.IsObject()) continue;
      const std::string_view type = json::getString(item, "type").value_or("");
      const std::string_view profile = json::getString(item, "profile").value_or("");
      if (type.empty() || profile.empty()) continue;
      auto it = std::find_if(global_profiles_.begin(), global_profiles_.end(),
                             [&](const auto& row) { return row.first == type; });
      if (it == global_profiles_.end()) {
        global_profiles_.emplace_back(std::string(type), std::vector<std::string>());
        it = std::prev(global_profiles_.end());
      }
      if (std::find(it->second.begin(), it->second.end(), profile) == it->second.end()) {
        it->second.emplace_back(profile);
      }
    }
  }
  auto model = fhirpath::Model::load(registry_->coreDir());
  model_ = model.ok() ? *model : fhirpath::Model::bundled();
}

ValidatorImpl::~ValidatorImpl() = default;

const std::vector<std::string>& ValidatorImpl::globalProfiles(std::string_view type) const {
  static const std::vector<std::string> kNone;
  for (const auto& [name, profiles] : global_profiles_) {
    if (name == type) return profiles;
  }
  return kNone;
}

namespace {

// Identical issues (same severity, place and text) come from checking the same element against
// the base definition and a profile; report them once.
void removeDuplicates(IssueList& issues, size_t first) {
  auto& list = issues.issues();
  std::set<std::tuple<int, std::string, std::string>> seen;
  size_t out = first;
  for (size_t index = first; index < list.size(); ++index) {
    Issue& issue = list[index];
    std::string where = issue.expression.empty() ? std::string() : issue.expression.front();
    if (!seen.emplace(static_cast<int>(issue.severity), where, issue.diagnostics).second) continue;
    if (out != index) list[out] = std::move(issue);
    ++out;
  }
  list.resize(out);
}

}  // namespace

void ValidatorImpl::validate(const json::Value& resource, const ValidationRequest& request,
                             IssueList& issues) const {
  size_t first = issues.issues().size();
  InstanceWalker walker(*this, issues);
  walker.validateRoot(resource, request.profiles);
  removeDuplicates(issues, first);
}

void ValidatorImpl::validateText(std::string_view text, const ValidationRequest& request,
                                 IssueList& issues) const {
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text, doc, error)) {
    Issue issue;
    issue.severity = Severity::kFatal;
    issue.code = "invalid";
    issue.diagnostics = "Error parsing JSON: " + error.describe();
    issue.location.push_back("line " + std::to_string(error.line) + ", column " +
                             std::to_string(error.column));
    issues.add(std::move(issue));
    return;
  }
  validate(doc, request, issues);
}

bool ValidatorImpl::knowsProfile(const std::string& url) const {
  return plans_->byUrl(url) != nullptr;
}

}  // namespace validator

Result<ValidatorPtr> createValidator(const ValidatorOptions& options) {
  std::string core = options.core_package_dir.empty()
                         ? std::string(GATEWAY_PROFILES_DIR) + "/r4-core/package"
                         : options.core_package_dir;
  auto registry = definitions::Registry::load(core, options.extra_paths);
  if (!registry.ok()) return registry.error();
  auto validator = std::make_shared<validator::ValidatorImpl>(std::move(*registry), options);
  if (options.strict_dependencies && !validator->startupWarnings().empty()) {
    std::string message = "strictDependencies: ";
    for (const std::string& warning : validator->startupWarnings()) message += warning + "; ";
    message.resize(message.size() - 2);
    return Error{message};
  }
  for (const std::string& name : options.preload) validator->plans().preload(name);
  return ValidatorPtr(std::move(validator));
}

}  // namespace fhir
