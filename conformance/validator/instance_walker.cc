// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/instance_walker.h"

#include <algorithm>
#include <cctype>

#include "conformance/regex/regex.h"
#include "conformance/validator/primitives.h"
#include "conformance/validator/questionnaire_response.h"
#include "conformance/validator/terminology_hooks.h"
#include "conformance/validator/validator_impl.h"
#include "conformance/validator/walker_util.h"

namespace fhir::validator {

InstanceWalker::InstanceWalker(const ValidatorImpl& validator, IssueList& issues)
    : validator_(validator), plans_(validator.plans()), issues_(issues) {
  context_.model = validator.model();
  installTerminology(context_, validator.terminology(), &undecided_value_set_);
}

void InstanceWalker::report(Severity severity, std::string_view code, std::string diagnostics) {
  reportAt(severity, code, path_, std::move(diagnostics));
}

void InstanceWalker::reportAt(Severity severity, std::string_view code, std::string expression,
                              std::string diagnostics) {
  Issue issue;
  issue.severity = severity;
  issue.code = std::string(code);
  issue.diagnostics = std::move(diagnostics);
  if (!expression.empty()) issue.expression.push_back(std::move(expression));
  issues_.add(std::move(issue));
}

void InstanceWalker::validateRoot(const json::Value& resource,
                                  const std::vector<std::string>& profiles) {
  path_.clear();
  validateResource(resource, &profiles);
}

void InstanceWalker::validateResource(const json::Value& resource,
                                      const std::vector<std::string>* profiles) {
  // A resource is its own owner for extension contexts.
  struct OwnerReset {
    InstanceWalker& walker;
    const ElementPlan* owner;
    std::string_view type;
    const json::Value* current;
    OwnerReset(InstanceWalker& w, const json::Value& resource)
        : walker(w), owner(w.owner_), type(w.owner_type_), current(w.current_resource_) {
      walker.owner_ = nullptr;
      walker.owner_type_ = {};
      walker.current_resource_ = &resource;
    }
    ~OwnerReset() {
      walker.owner_ = owner;
      walker.owner_type_ = type;
      walker.current_resource_ = current;
    }
  } owner_reset(*this, resource);
  if (!resource.IsObject()) {
    report(Severity::kError, "structure",
           std::string("A resource must be a JSON Object, not ") + jsonKindName(resource));
    return;
  }
  auto type = json::getString(resource, "resourceType");
  if (!type) {
    report(Severity::kError, "structure",
           "Unable to find resourceType property: a resource must name its type");
    return;
  }
  const StructurePlan* plan = plans_.byType(*type);
  if (!plan || plan->kind != "resource" || plan->derivation == "constraint" || !plan->root) {
    report(Severity::kError, "structure", "Unknown resource type '" + std::string(*type) + "'");
    return;
  }
  if (plan->is_abstract) {
    report(Severity::kError, "structure",
           "The resource type '" + std::string(*type) + "' is abstract and cannot be instantiated");
    return;
  }
  bool top_level = path_.empty();
  if (top_level) path_ = *type;
  // FHIRPath %resource/%rootResource (FHIRPath 2.1.9.1, R4 "FHIRPath variables"): the resource
  // whose definition is being checked is %resource; a contained resource has its container as
  // %rootResource, any other resource (top level, Bundle entry, Parameters) is its own root.
  // Constraints a Bundle profile puts on Bundle.entry.resource are checked after this walk
  // returns, with the Bundle restored as %resource (the HL7 `bundle-invariant` case), and a
  // nested Bundle is %resource for its own bdl-* rules.
  // What this walk finds is remembered for references to the resource (rememberConformance).
  const size_t issues_before = issues_.issues().size();
  const bool limited_before = depth_limited_;
  depth_limited_ = false;
  const json::Value* saved_resource = resource_;
  const json::Value* saved_root = root_resource_;
  const json::Value* saved_container = container_;
  bool is_contained = contained_;
  contained_ = false;
  if (!resource_ || !is_contained) {
    resource_ = root_resource_ = &resource;
  } else {
    resource_ = &resource;
  }
  if (!is_contained) container_ = &resource;
  const json::Value* saved_bundle = bundle_;
  if (*type == "Bundle" || *type == "Parameters") bundle_ = &resource;
  validateAgainst(resource, *plan);
  if (!is_contained && validator_.options().validate_contained) checkContainedReferenced(resource);
  if (*type == "QuestionnaireResponse") checkAgainstQuestionnaire(resource);
  if (*type == "SearchParameter") checkSearchParameter(resource);
  if (*type == "CapabilityStatement") checkCapabilityStatement(resource);
  if (*type == "MeasureReport") checkMeasureReport(resource);
  if (*type == "StructureDefinition") {
    checkDifferentialFixedValues(resource);
    checkDifferentialPaths(resource);
    checkDiscriminatorPaths(resource);
  }

  // Declared and requested profiles.
  std::vector<std::string> targets;
  if (const json::Value* meta = json::find(resource, "meta"); meta && meta->IsObject()) {
    if (const json::Value* declared = json::find(*meta, "profile"); declared && declared->IsArray()) {
      size_t index = 0;
      for (const json::Value& url : declared->GetArray()) {
        if (json::isString(url)) {
          std::string canonical(json::stringView(url));
          if (plans_.byUrl(canonical)) {
            targets.push_back(std::move(canonical));
          } else {
            std::string where = path_ + ".meta.profile";
            appendIndex(where, index);
            reportAt(Severity::kWarning, "structure", std::move(where),
                     "Profile reference '" + canonical +
                         "' has not been checked because it could not be found");
          }
        }
        ++index;
      }
    }
  }
  // Profiles an ImplementationGuide makes global for this type (ImplementationGuide.global).
  for (const std::string& url : validator_.globalProfiles(*type)) {
    if (std::find(targets.begin(), targets.end(), url) != targets.end()) continue;
    if (plans_.byUrl(url)) {
      targets.push_back(url);
    } else {
      report(Severity::kWarning, "not-supported",
             "The global profile " + url + " of a loaded ImplementationGuide is not known, so it was not checked");
    }
  }
  if (profiles) {
    for (const std::string& url : *profiles) {
      if (plans_.byUrl(url)) {
        targets.push_back(url);
      } else {
        report(Severity::kError, "structure", "Unknown profile " + url);
      }
    }
  }
  for (const std::string& url : targets) {
    const StructurePlan* profile = plans_.byUrl(url);
    if (!profile->root) {
      report(Severity::kError, "structure",
             "Profile " + url + " cannot be used: " + profile->error);
      continue;
    }
    if (profile->type != *type) {
      report(Severity::kError, "structure",
             "Profile " + url + " is for resources of type " + profile->type + ", not " +
                 std::string(*type));
      continue;
    }
    if (profile == plan) continue;
    validateAgainst(resource, *profile);
  }
  if (!is_contained) rememberConformance(resource, targets, issues_before);
  depth_limited_ = depth_limited_ || limited_before;
  resource_ = saved_resource;
  root_resource_ = saved_root;
  container_ = saved_container;
  bundle_ = saved_bundle;
  if (top_level) path_.clear();
}

void InstanceWalker::checkAgainstQuestionnaire(const json::Value& response) {
  auto canonical = json::getString(response, "questionnaire");
  if (!canonical || canonical->empty()) return;
  const json::Value* questionnaire = nullptr;
  if ((*canonical)[0] == '#') {
    if (const json::Value* contained = json::find(response, "contained"); contained && contained->IsArray()) {
      for (const json::Value& item : contained->GetArray()) {
        if (item.IsObject() && json::getString(item, "resourceType") == "Questionnaire" &&
            json::getString(item, "id") == canonical->substr(1)) {
          questionnaire = &item;
        }
      }
    }
  } else {
    questionnaire = validator_.registry().find(definitions::ResourceKind::kQuestionnaire, *canonical);
  }
  if (!questionnaire) return;
  const fhirpath::ModelPtr& model = validator_.model();
  checkQuestionnaireResponse(response, *questionnaire, path_, validator_.terminology(),
                             [&](std::string_view type) { return model->isResourceType(type); },
                             issues_);
}

void InstanceWalker::validateAgainst(const json::Value& resource, const StructurePlan& plan) {
  walkObject(resource, *plan.root, plan, /*resource_root=*/true);
  checkConstraints(plan.root->constraints, &resource, nullptr, plan.type);
  if (plan.type == "Bundle" && plan.derivation == "specialization") checkBundle(resource);
}

void InstanceWalker::walkObject(const json::Value& object, const ElementPlan& holder,
                                const StructurePlan& plan, bool resource_root) {
  if (object.MemberCount() == 0) {
    report(Severity::kError, "structure", "Object must have some content");
    return;
  }
  if (!resource_root && plan.kind != "primitive-type" && object.MemberCount() == 1 &&
      object.MemberBegin()->name == "id") {
    // ele-1, checked natively: an element needs a value or children other than its id.
    report(Severity::kError, "invariant",
           "Constraint failed: ele-1: 'All FHIR elements must have a @value or children'");
  }
  Member members[64];
  std::vector<Member> overflow;
  size_t count = 0;
  auto add = [&](const Member& member) -> Member& {
    if (count < 64) return members[count++] = member;
    ++count;
    overflow.push_back(member);
    return overflow.back();
  };
  auto at = [&](size_t index) -> Member& { return index < 64 ? members[index] : overflow[index - 64]; };
  auto findByName = [&](std::string_view name) -> Member* {
    for (size_t index = 0; index < count; ++index) {
      if (at(index).json_name == name) return &at(index);
    }
    return nullptr;
  };

  bool saw_extension = false;
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    std::string_view name = memberName(it->name);
    if (resource_root && name == "resourceType") continue;
    bool is_extension = !name.empty() && name[0] == '_';
    std::string_view base = is_extension ? name.substr(1) : name;
    std::string_view type;
    const ElementPlan* element = holder.child(base, type);
    if (!element || (is_extension && !isPrimitiveType(type))) {
      report(Severity::kError, "structure", "Unrecognized property '" + std::string(name) + "'");
      continue;
    }
    Member* existing = nullptr;
    if (is_extension || saw_extension) existing = findByName(base);
    saw_extension = saw_extension || is_extension;
    if (existing) {
      (is_extension ? existing->extension : existing->value) = &it->value;
      continue;
    }
    Member member;
    member.element = element;
    member.type = type;
    member.json_name = base;
    (is_extension ? member.extension : member.value) = &it->value;
    add(member);
  }

  // Validate members and count occurrences per child element for cardinality.
  const size_t child_count = holder.children.size();
  uint32_t local_counts[128];
  std::vector<uint32_t> heap_counts;
  uint32_t* counts = local_counts;
  if (child_count > 128) {
    heap_counts.resize(child_count);
    counts = heap_counts.data();
  }
  std::fill(counts, counts + child_count, 0u);
  for (size_t index = 0; index < count; ++index) {
    const Member& member = at(index);
    uint32_t found = 0;
    validateMember(member, plan, resource_root, found);
    counts[member.element->index_in_parent] += found;
  }
  for (size_t index = 0; index < child_count; ++index) {
    const ElementPlan* child = holder.children[index];
    uint32_t found = counts[index];
    if (found < child->min) {
      std::string name = child->path + (child->choice ? "[x]" : "");
      if (child->choice && child->path.size() > 3 &&
          child->path.compare(child->path.size() - 3, 3, "[x]") == 0) {
        name = child->path;
      }
      report(Severity::kError, "structure",
             name + ": minimum required = " + std::to_string(child->min) + ", but only found " +
                 std::to_string(found) + " (from " + plan.versionedUrl() + ")");
    }
    if (child->max != UINT32_MAX && found > child->max) {
      report(Severity::kError, "structure",
             child->path + ": max allowed = " + std::to_string(child->max) + ", but found " +
                 std::to_string(found) + " (from " + plan.versionedUrl() + ")");
    }
    if (found == 0 && child->slicing && !child->slices.empty()) {
      // The sliced element is absent: every slice is found 0 times (a required slice such as
      // extension:minutesSpent is missing even when the element's own minimum is 0).
      std::vector<uint32_t> none(child->slices.size(), 0u);
      checkSliceCounts(*child, none, path_.size(), plan);
    }
  }
}

void InstanceWalker::validateMember(const Member& member, const StructurePlan& plan,
                                    bool resource_root, uint32_t& count) {
  const ElementPlan& element = *member.element;
  size_t parent_size = path_.size();
  std::vector<uint32_t> slice_counts(element.slicing ? element.slices.size() : 0, 0);
  PathMark mark(path_);
  path_ += '.';
  path_ += member.json_name;
  if (element.choice) {
    path_.resize(path_.size() - member.json_name.size() + element.name.size());
    path_ += ".ofType(";
    path_ += member.type;
    path_ += ')';
  }
  const json::Value* value = member.value;
  const json::Value* extension = member.extension;
  bool resource_id = resource_root && member.json_name == "id";

  if (element.is_array) {
    bool value_ok = !value || value->IsArray();
    bool extension_ok = !extension || extension->IsArray();
    if (!value_ok || !extension_ok) {
      const json::Value& wrong = !value_ok ? *value : *extension;
      report(Severity::kError, "invalid",
             "The property " + std::string(member.json_name) + " must be a JSON Array, not " +
                 jsonKindName(wrong));
      // Validate the single value anyway so its own problems are reported.
      if (value && !value->IsArray()) {
        ++count;
        validateItem(value, extension && !extension->IsArray() ? extension : nullptr, element,
                     member.type, plan, resource_id);
      }
      return;
    }
    size_t value_size = value ? value->Size() : 0;
    size_t extension_size = extension ? extension->Size() : 0;
    if ((value && value_size == 0) || (extension && extension_size == 0)) {
      report(Severity::kError, "invalid",
             "Array cannot be empty - the property should not be present if it has no values");
      return;
    }
    if (value && extension && value_size != extension_size) {
      report(Severity::kError, "structure",
             "The arrays " + std::string(member.json_name) + " and _" +
                 std::string(member.json_name) + " must have the same length");
    }
    size_t size = std::max(value_size, extension_size);
    size_t base = path_.size();
    for (size_t index = 0; index < size; ++index) {
      const json::Value* item = value && index < value_size ? &(*value)[static_cast<rapidjson::SizeType>(index)] : nullptr;
      const json::Value* item_extension =
          extension && index < extension_size ? &(*extension)[static_cast<rapidjson::SizeType>(index)] : nullptr;
      if (item && item->IsNull()) item = nullptr;
      if (item_extension && item_extension->IsNull()) item_extension = nullptr;
      appendIndex(path_, index);
      if (!item && !item_extension) {
        report(Severity::kError, "structure", "A null value is not allowed here");
      } else {
        ++count;
        dispatchItem(item, item_extension, element, member.type, plan, resource_id, slice_counts);
      }
      path_.resize(base);
    }
    checkSliceCounts(element, slice_counts, parent_size, plan);
    return;
  }

  if ((value && value->IsArray()) || (extension && extension->IsArray())) {
    report(Severity::kError, "invalid",
           "The property " + std::string(member.json_name) +
               " must be a single value (JSON Object or primitive), not an Array");
    return;
  }
  if (value && value->IsNull()) value = nullptr;
  if (extension && extension->IsNull()) extension = nullptr;
  if (!value && !extension) {
    report(Severity::kError, "structure", "A null value is not allowed here");
    return;
  }
  ++count;
  dispatchItem(value, extension, element, member.type, plan, resource_id, slice_counts);
  checkSliceCounts(element, slice_counts, parent_size, plan);
}

void InstanceWalker::validateItem(const json::Value* value, const json::Value* extension,
                                  const ElementPlan& element, std::string_view type,
                                  const StructurePlan& plan, bool resource_id) {
  // The element owning what is walked below, for extension context checks.
  const ElementPlan* saved_owner = owner_;
  std::string_view saved_owner_type = owner_type_;
  if (type != "Extension") {  // an extension's context is the element that holds it
    owner_ = &element;
    owner_type_ = type;
  }
  validateItemOwned(value, extension, element, type, plan, resource_id);
  owner_ = saved_owner;
  owner_type_ = saved_owner_type;
}

void InstanceWalker::validateItemOwned(const json::Value* value, const json::Value* extension,
                                       const ElementPlan& element, std::string_view type,
                                       const StructurePlan& plan, bool resource_id) {
  if (type.empty() && value && value->IsObject() && json::find(*value, "resourceType")) {
    type = "Resource";  // an element allowing several resource types
  }
  if (type.empty() && value && value->IsObject()) {
    // A slice of a content-reference element (Parameters.parameter.part:x) that a profile gave
    // children of its own is walked with those; otherwise the referenced element's children.
    if (!element.children.empty()) {
      walkObject(*value, element, plan, false);
      return;
    }
    if (element.content_ref) {
      walkObject(*value, *element.content_ref, plan, false);
      return;
    }
  }
  if (type.empty()) {
    report(Severity::kError, "structure",
           "The type of element " + element.path + " could not be determined");
    return;
  }
  if (isPrimitiveType(type)) {
    if (value) {
      if (value->IsObject() || value->IsArray()) {
        report(Severity::kError, "structure",
               std::string("The value of a ") + std::string(type) +
                   " must be a JSON primitive, not " + jsonKindName(*value));
      } else if (resource_id) {
        validateResourceId(*value);
      } else {
        std::string message;
        std::string code;
        if (!checkPrimitive(type, *value, message, code)) report(Severity::kError, code, message);
        if (json::isString(*value)) checkTextContent(json::stringView(*value), type);
        if (type == "canonical" && json::isString(*value)) checkCanonicalTarget(json::stringView(*value), element);
      }
    }
    if (!element.constraints.empty()) checkConstraints(element.constraints, value, extension, type);
    if (value && element.binding && json::isString(*value)) checkBinding(*value, type, *element.binding);
    if (value) checkFixedAndPattern(*value, element, plan);
    if (value) checkRegex(*value, element, type);
    if (extension) {
      if (!value && extension->IsObject() && extension->MemberCount() == 1 &&
          extension->MemberBegin()->name == "id") {
        // ele-1, checked natively: a primitive without a value needs extensions.
        report(Severity::kError, "invariant",
               "Constraint failed: ele-1: 'All FHIR elements must have a @value or children'");
      }
      if (!extension->IsObject()) {
        report(Severity::kError, "structure",
               std::string("The primitive extension partner must be a JSON Object, not ") +
                   jsonKindName(*extension));
      } else if (const StructurePlan* primitive = plans_.byType(type); primitive && primitive->root) {
        walkObject(*extension, *primitive->root, *primitive, false);
      }
    }
    return;
  }
  if (!value) return;
  if (!value->IsObject()) {
    report(Severity::kError, "structure",
           "The property must be a JSON Object (type " + std::string(type) + "), not " +
               jsonKindName(*value));
    return;
  }
  validateComplex(*value, element, type, plan);
  if (!element.constraints.empty()) checkConstraints(element.constraints, value, nullptr, type);
  if (element.binding) checkBinding(*value, type, *element.binding);
  if (type == "Coding") checkCoding(*value);
  if (type == "Attachment") checkAttachment(*value);
  if (type == "Reference") checkReferenceTarget(*value, element);
  checkFixedAndPattern(*value, element, plan);
}

void InstanceWalker::checkAttachment(const json::Value& attachment) {
  const json::Value* size = json::find(attachment, "size");
  auto data = json::getString(attachment, "data");
  if (!size || !data || !json::isNumber(*size) || !isValidBase64(*data)) return;
  auto stated = json::numberAsInt64(*size);
  size_t actual = base64DecodedLength(*data);
  if (stated && *stated != static_cast<int64_t>(actual)) {
    report(Severity::kError, "structure",
           "Stated Attachment Size " + std::to_string(*stated) +
               " does not match actual attachment size " + std::to_string(actual));
  }
}

void InstanceWalker::checkRange(const json::Value& value, const ElementPlan& element) {
  // Returns <0, 0, >0, or nullopt when the two cannot be compared.
  auto compare = [](const json::Value& left, const json::Value& right) -> std::optional<int> {
    if (json::isNumber(left) && json::isNumber(right)) {
      double a = json::numberAsDouble(left).value_or(0), b = json::numberAsDouble(right).value_or(0);
      return a < b ? -1 : a > b ? 1 : 0;
    }
    if (json::isString(left) && json::isString(right)) {
      std::string_view a = json::stringView(left), b = json::stringView(right);
      return a < b ? -1 : a > b ? 1 : 0;
    }
    if (left.IsObject() && right.IsObject()) {
      const json::Value* a = json::find(left, "value");
      const json::Value* b = json::find(right, "value");
      if (!a || !b || !json::isNumber(*a) || !json::isNumber(*b)) return std::nullopt;
      double x = json::numberAsDouble(*a).value_or(0), y = json::numberAsDouble(*b).value_or(0);
      auto unit_a = json::getString(left, "code"), unit_b = json::getString(right, "code");
      if (unit_a && unit_b && *unit_a != *unit_b) {
        double fa = 0, fb = 0;
        char da = 0, db = 0;
        if (!ucumFactor(*unit_a, fa, da) || !ucumFactor(*unit_b, fb, db) || da != db) return std::nullopt;
        x *= fa;
        y *= fb;
      }
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return std::nullopt;
  };
  if (element.min_value) {
    auto result = compare(value, *element.min_value);
    if (result && *result < 0) {
      report(Severity::kError, "invalid",
             "The value in the instance (" + describeValue(value) +
                 ") is less than the specified minimum value (" + describeValue(*element.min_value) + ")");
    }
  }
  if (element.max_value) {
    auto result = compare(value, *element.max_value);
    if (result && *result > 0) {
      report(Severity::kError, "invalid",
             "The value in the instance (" + describeValue(value) +
                 ") is greater than the specified maxValue (" + describeValue(*element.max_value) + ")");
    }
  }
}

void InstanceWalker::checkTextContent(std::string_view text, std::string_view type) {
  const ValidatorOptions& options = validator_.options();
  if (type == "markdown") {
    if (options.no_html_in_markdown && markdownContainsHtmlTag(text)) {
      report(Severity::kError, "invalid",
             "The markdown contains content that appears to be an embedded HTML tag; markdown "
             "must not hold HTML");
    }
  } else if (!options.allow_example_urls && (type == "uri" || type == "url" || type == "canonical") &&
             isExampleUrl(text)) {
    report(Severity::kError, "invalid",
           "Example URLs are not allowed in this context (" + std::string(text) + ")");
  }
  if (type != "markdown" && options.security_checks && type != "xhtml" && containsHtmlTag(text)) {
    report(Severity::kError, "security",
           "The string value contains text that looks like embedded HTML tags, which are not "
           "allowed for security reasons in this context");
  }
}

void InstanceWalker::checkRegex(const json::Value& value, const ElementPlan& element,
                                std::string_view type) {
  auto check = [&](const std::string& pattern) {
    if (pattern.empty()) return;
    std::string text = json::isString(value)   ? std::string(json::stringView(value))
                       : json::isNumber(value) ? json::numberText(value)
                       : value.IsBool()        ? std::string(value.GetBool() ? "true" : "false")
                                               : std::string();
    auto compiled = regex::Regex::cached(pattern, regex::Dialect::kFhir);
    if (!compiled.ok()) {
      report(Severity::kWarning, "not-supported",
             "The value was not checked against the regex of the profile (not checked): " +
                 compiled.message());
    } else if (!(*compiled)->matchesWhole(text)) {
      report(Severity::kError, "invariant",
             "Element value '" + text + "' does not meet regex '" + pattern + "'");
    }
  };
  check(element.regex);
  for (const TypeRef& ref : element.types) {
    if (ref.code == type && ref.regex != element.regex) check(ref.regex);
  }
}

void InstanceWalker::checkFixedAndPattern(const json::Value& value, const ElementPlan& element,
                                          const StructurePlan& plan) {
  if (element.fixed && !matchesFixed(value, *element.fixed)) {
    report(Severity::kError, "value",
           "Value is '" + describeValue(value) + "' but is fixed to '" + describeValue(*element.fixed) +
               "' in the profile " + plan.versionedUrl());
  }
  if (element.min_value || element.max_value) checkRange(value, element);
  if (element.pattern && !matchesPattern(value, *element.pattern)) {
    report(Severity::kError, "value",
           "The value does not match the pattern " + describeValue(*element.pattern) +
               " defined in the profile " + plan.versionedUrl());
  }
}

void InstanceWalker::validateComplex(const json::Value& value, const ElementPlan& element,
                                     std::string_view type, const StructurePlan& plan) {
  if (type == "Resource" || type == "DomainResource" || validator_.model()->isResourceType(type)) {
    contained_ = element.name == "contained";
    if (contained_ && !validator_.options().validate_contained) {
      contained_ = false;
      return;
    }
    // type.profile on a resource element (Bundle.entry.resource, Parameters.parameter.resource,
    // contained): the resource conforms to one of the profiles listed for its type.
    std::vector<std::string> type_profiles;
    std::string_view resource_type = json::getString(value, "resourceType").value_or("");
    for (const TypeRef& ref : element.types) {
      if (ref.code != resource_type && ref.code != "Resource" && ref.code != "DomainResource") continue;
      type_profiles.insert(type_profiles.end(), ref.profiles.begin(), ref.profiles.end());
    }
    if (type_profiles.size() <= 1) {
      validateResource(value, type_profiles.empty() ? nullptr : &type_profiles);
      return;
    }
    validateResource(value, nullptr);
    for (const std::string& url : type_profiles) {
      if (conformsTo(value, url, &plan)) return;
    }
    std::string listed;
    bool undecided = false;  // an alternative that cannot be used (unknown, no usable snapshot)
    for (const std::string& url : type_profiles) {
      listed += (listed.empty() ? "" : ", ") + url;
      const StructurePlan* alternative = plans_.byUrl(url, &plan);
      undecided = undecided || !alternative || !alternative->root;
    }
    if (undecided) {
      report(validator_.uncheckedBindingSeverity(), "not-supported",
             "Conformance to one of the profiles allowed for " + element.path + " (" + listed +
                 ") was not checked: not all of them are known and usable");
      return;
    }
    report(Severity::kError, "structure",
           "The resource does not conform to any of the profiles allowed for " + element.path + " (" + listed + ")");
    return;
  }
  if (type == "Extension" && element.children.empty()) {
    validateExtension(value, element, plan);
    return;
  }
  if (!element.children.empty()) {
    walkObject(value, element, plan, false);
    return;
  }
  if (element.content_ref) {
    walkObject(value, *element.content_ref, plan, false);
    return;
  }
  const StructurePlan* type_plan = nullptr;
  for (const TypeRef& ref : element.types) {
    if (ref.code == type) type_plan = plans_.get(ref.slot);
  }
  if (!type_plan) type_plan = plans_.byType(type);
  if (!type_plan || !type_plan->root) {
    report(Severity::kError, "structure", "Unknown type '" + std::string(type) + "'");
    return;
  }
  walkObject(value, *type_plan->root, *type_plan, false);
  if (!type_plan->root->constraints.empty()) {
    checkConstraints(type_plan->root->constraints, &value, nullptr, type_plan->type);
  }
}

void InstanceWalker::validateResourceId(const json::Value& value) {
  if (!json::isString(value)) {
    report(Severity::kError, "structure", "The value for an id must be a JSON string");
    return;
  }
  std::string_view id = json::stringView(value);
  if (id.size() > 64) {
    report(Severity::kError, "invalid",
           "Invalid Resource id: Too long (" + std::to_string(id.size()) + " chars)");
  } else if (!isValidId(id)) {
    report(Severity::kError, "invalid",
           "Invalid Resource id: Invalid Characters ('" + std::string(id) + "')");
  }
}

}  // namespace fhir::validator
