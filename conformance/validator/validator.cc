// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/validator.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "conformance/definitions/registry.h"
#include "conformance/validator/instance_walker.h"
#include "conformance/validator/plan.h"
#include "conformance/validator/validator_impl.h"

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
  auto model = fhirpath::Model::load(registry_->coreDir());
  model_ = model.ok() ? *model : fhirpath::Model::bundled();
}

ValidatorImpl::~ValidatorImpl() = default;

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
