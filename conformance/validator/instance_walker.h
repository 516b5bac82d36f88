// SPDX-License-Identifier: Apache-2.0
#pragma once

// Walks one resource instance against compiled plans and reports issues. One walker per
// validate() call; it holds the current FHIRPath location and nothing shared.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "conformance/fhirpath/fhirpath.h"
#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "conformance/validator/plan.h"

namespace fhir::validator {

class ValidatorImpl;

class InstanceWalker {
 public:
  InstanceWalker(const ValidatorImpl& validator, IssueList& issues);

  // Validates a top-level resource against its base definition, its meta.profile entries and
  // `profiles`.
  void validateRoot(const json::Value& resource, const std::vector<std::string>& profiles);

 private:
  struct Member {
    const ElementPlan* element = nullptr;
    std::string_view type;       // concrete type for a choice, else the element's single type
    std::string_view json_name;  // "valueQuantity"
    const json::Value* value = nullptr;
    const json::Value* extension = nullptr;  // the `_x` partner
  };

  // Validates a resource at the current path (the path already names it, e.g. "Patient" or
  // "Bundle.entry[0].resource").
  void validateResource(const json::Value& resource, const std::vector<std::string>* profiles);
  void validateAgainst(const json::Value& resource, const StructurePlan& plan);
  void walkObject(const json::Value& object, const ElementPlan& holder, const StructurePlan& plan,
                  bool resource_root);
  void validateMember(const Member& member, const StructurePlan& plan, bool resource_root,
                      uint32_t& count);
  void validateItem(const json::Value* value, const json::Value* extension,
                    const ElementPlan& element, std::string_view type, const StructurePlan& plan,
                    bool resource_id);
  void validateItemOwned(const json::Value* value, const json::Value* extension,
                         const ElementPlan& element, std::string_view type,
                         const StructurePlan& plan, bool resource_id);
  void checkExtensionContext(const StructurePlan& definition);
  void validateComplex(const json::Value& value, const ElementPlan& element, std::string_view type,
                       const StructurePlan& plan);
  void validateResourceId(const json::Value& value);
  void validateExtension(const json::Value& value, const ElementPlan& element,
                         const StructurePlan& plan);
  // Invariants of `constraints` on one element value (FHIRPath, or native for the few listed in
  // instance_walker.cc).
  void checkConstraints(const std::vector<Constraint>& constraints, const json::Value* value,
                        const json::Value* extension, std::string_view type);
  void checkContainedReferenced(const json::Value& resource);
  void checkAttachment(const json::Value& attachment);
  void checkReferenceTarget(const json::Value& reference, const ElementPlan& element);
  // A reference resolved to an entry of the Bundle being walked conforms to one of the
  // targetProfiles that are profiles (not plain resource types).
  void checkReferencedProfile(std::string_view reference, const ElementPlan& element);
  // The resource of the entry (or parameter, at any depth of parts) of bundle_ that `reference`
  // (absolute or [type]/[id]) names.
  const json::Value* resolveInBundle(std::string_view reference) const;
  void checkRange(const json::Value& value, const ElementPlan& element);
  // Differential fixed[x] values of a StructureDefinition that contradict its base's fixed values.
  void checkDifferentialFixedValues(const json::Value& definition);
  // Differential paths of a StructureDefinition that name no element of its base.
  void checkDifferentialPaths(const json::Value& definition);
  // Plain discriminator paths of a StructureDefinition's slicings that name no child of the
  // sliced element.
  void checkDiscriminatorPaths(const json::Value& definition);
  // SearchParameter.derivedFrom consistency, CapabilityStatement search parameter types against
  // their definitions, MeasureReport against its Measure (walker_definitions.cc).
  void checkSearchParameter(const json::Value& parameter);
  void checkCapabilityStatement(const json::Value& statement);
  void checkMeasureReport(const json::Value& report_resource);
  // A canonical that resolves to a known resource of a type its targetProfile does not allow.
  void checkCanonicalTarget(std::string_view canonical, const ElementPlan& element);
  // Security checks on string values and HTML in markdown, when the options ask for them.
  void checkTextContent(std::string_view text, std::string_view type);
  // The regex extensions of the element and of its type `type` (whole-value, RE2: linear time).
  void checkRegex(const json::Value& value, const ElementPlan& element, std::string_view type);
  void checkFixedAndPattern(const json::Value& value, const ElementPlan& element,
                            const StructurePlan& plan);
  // Slicing: validates one item against the slice it matches (or the element), counting slices.
  void dispatchItem(const json::Value* value, const json::Value* extension,
                    const ElementPlan& element, std::string_view type, const StructurePlan& plan,
                    bool resource_id, std::vector<uint32_t>& slice_counts);
  bool matchesSlice(const json::Value* value, std::string_view type, const ElementPlan& element,
                    const ElementPlan& slice, const StructurePlan& plan);
  bool conformsToElement(const json::Value& value, const ElementPlan& element,
                         const StructurePlan& plan);
  bool conformsTo(const json::Value& value, const std::string& url, const StructurePlan* from);
  void rememberConformance(const json::Value& resource, const std::vector<std::string>& targets,
                           size_t issues_before);
  void checkSliceCounts(const ElementPlan& element, const std::vector<uint32_t>& slice_counts,
                        size_t parent_size, const StructurePlan& plan);
  void checkAgainstQuestionnaire(const json::Value& response);
  void checkLocalReference(const json::Value* value, const Constraint& constraint);
  void checkBinding(const json::Value& value, std::string_view type, const Binding& binding);
  void checkCoding(const json::Value& coding);
  void checkBundle(const json::Value& bundle);
  void checkBundleReferences(const json::Value& entries, bool document);

  void report(Severity severity, std::string_view code, std::string diagnostics);
  void reportAt(Severity severity, std::string_view code, std::string expression,
                std::string diagnostics);

  const ValidatorImpl& validator_;
  const PlanCache& plans_;
  IssueList& issues_;
  std::string path_;
  const json::Value* resource_ = nullptr;       // %resource
  const json::Value* root_resource_ = nullptr;  // %rootResource
  const json::Value* container_ = nullptr;      // holds the `contained` local references use
  const json::Value* current_resource_ = nullptr;  // the resource being walked
  const ElementPlan* owner_ = nullptr;  // element whose value is being walked (null at a root)
  std::string_view owner_type_;
  bool contained_ = false;     // the next validateResource() is for a contained resource
  // The innermost Bundle or Parameters being walked: its entries (parameters) resolve references.
  const json::Value* bundle_ = nullptr;
  int conformance_depth_ = 0;  // nesting of conformsTo() checks (targetProfile of resolved references)
  // This walk (or one it relied on) left a reference's target profile unchecked because
  // conformance_depth_ was at the limit: its answer may differ at a shallower depth.
  bool depth_limited_ = false;
  // What conformsTo() found for a resource against a resource profile, shared by the walkers of
  // one validation: a Bundle whose entries refer to one Patient many times checks the Patient
  // against each target profile once. The answer depends on the resource, the profile, the
  // Bundle its references resolve in and the depth (deeper checks stop following references);
  // nothing else of the asking walker reaches a resource profile's walk. An answer found at one
  // depth serves another when the checks made would be the same or fewer (reusableAt).
  using ConformanceKey = std::tuple<const json::Value*, const json::Value*, std::string>;
  struct ConformanceAnswer {
    bool conforms = false;
    int depth = 0;
    bool depth_limited = false;
    bool reusableAt(int depth) const;
  };
  using ConformanceMemo = std::map<ConformanceKey, std::vector<ConformanceAnswer>>;
  std::shared_ptr<ConformanceMemo> conformance_memo_;
  fhirpath::EvaluationContext context_;
  std::string undecided_value_set_;
  std::string_view enclosing_extension_;  // URL of the extension whose children are walked  // set by memberOf() when the local terminology cannot answer
};

}  // namespace fhir::validator
