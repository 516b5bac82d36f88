// SPDX-License-Identifier: Apache-2.0
#pragma once

// The Validator implementation: the registry of definitions, the plan cache and the shared
// services the instance walker uses. Internal to conformance/validator.

#include <memory>

#include "conformance/definitions/registry.h"
#include "conformance/fhirpath/fhirpath.h"
#include "conformance/terminology/terminology.h"
#include "conformance/validator/plan.h"
#include "conformance/validator/validator.h"

namespace fhir::validator {

class ValidatorImpl final : public Validator {
 public:
  ValidatorImpl(std::unique_ptr<definitions::Registry> registry, const ValidatorOptions& options);
  ~ValidatorImpl() override;

  // Validator
  void validate(const json::Value& resource, const ValidationRequest& request,
                IssueList& issues) const override;
  void validateText(std::string_view text, const ValidationRequest& request,
                    IssueList& issues) const override;
  bool knowsProfile(const std::string& url) const override;
  const std::vector<std::string>& startupWarnings() const override { return warnings_; }

  const definitions::Registry& registry() const { return *registry_; }
  const PlanCache& plans() const { return *plans_; }
  const fhirpath::ModelPtr& model() const { return model_; }
  const terminology::Terminology& terminology() const { return *terminology_; }
  Severity uncheckedBindingSeverity() const { return unchecked_binding_; }
  const ValidatorOptions& options() const { return options_; }
  // "name#version" of an HL7 extensions package (hl7.fhir.uv.extensions*) a loaded package
  // depends on but that is not loaded; empty when there is none.
  const std::string& missingExtensionsPackage() const { return missing_extensions_; }
  // Profiles that loaded ImplementationGuides make global for resources of `type`
  // (ImplementationGuide.global: every resource of that type must conform to them).
  const std::vector<std::string>& globalProfiles(std::string_view type) const;

 private:
  std::unique_ptr<definitions::Registry> registry_;
  std::unique_ptr<PlanCache> plans_;
  std::unique_ptr<terminology::Terminology> terminology_;
  fhirpath::ModelPtr model_;
  Severity unchecked_binding_ = Severity::kWarning;
  ValidatorOptions options_;
  std::vector<std::string> warnings_;
  std::string missing_extensions_;
  std::vector<std::pair<std::string, std::vector<std::string>>> global_profiles_;  // type -> profiles
};

}  // namespace fhir::validator
