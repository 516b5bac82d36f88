// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/instance_walker.h"

#include <cctype>

#include "conformance/validator/primitives.h"
#include "conformance/validator/questionnaire_response.h"
#include "conformance/validator/terminology_hooks.h"
#include "conformance/validator/validator_impl.h"

namespace fhir::validator {
namespace {

// Restores the path to its length at construction.
class PathMark {
 public:
  explicit PathMark(std::string& path) : path_(path), size_(path.size()) {}
  ~PathMark() { path_.resize(size_); }
  PathMark(const PathMark&) = delete;
  PathMark& operator=(const PathMark&) = delete;

 private:
  std::string& path_;
  size_t size_;
};

std::string_view memberName(const json::Value& name) {
  return std::string_view(name.GetString(), name.GetStringLength());
}

const char* jsonKindName(const json::Value& value) {
  if (value.IsNull()) return "null";
  if (value.IsObject()) return "an Object";
  if (value.IsArray()) return "an Array";
  return "a Primitive property";
}

void appendIndex(std::string& path, size_t index) {
  path += '[';
  path += std::to_string(index);
  path += ']';
}

bool isAbsoluteUrl(std::string_view url) {
  size_t colon = url.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i) {
    char c = url[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
    if (!ok) return false;
  }
  return true;
}

}  // namespace

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
  validateAgainst(resource, *plan);
  if (!is_contained) checkContainedReferenced(resource);
  if (*type == "QuestionnaireResponse") checkAgainstQuestionnaire(resource);

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
  resource_ = saved_resource;
  root_resource_ = saved_root;
  container_ = saved_container;
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

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool containsNoCase(std::string_view text, std::string_view needle) {
  if (needle.size() > text.size()) return false;
  for (size_t start = 0; start + needle.size() <= text.size(); ++start) {
    size_t index = 0;
    while (index < needle.size() && lower(text[start + index]) == needle[index]) ++index;
    if (index == needle.size()) return true;
  }
  return false;
}

}  // namespace

// txt-1: only basic formatting: no active content elements, no event-handler attributes, no
// javascript: URLs.
bool narrativeIsSafe(std::string_view div) {
  auto startsWithNoCase = [&](size_t at, std::string_view word) {
    if (at + word.size() > div.size()) return false;
    for (size_t index = 0; index < word.size(); ++index) {
      if (lower(div[at + index]) != word[index]) return false;
    }
    return true;
  };
  bool in_tag = false;
  bool has_div = false;
  char quote = 0;
  for (size_t i = 0; i < div.size(); ++i) {
    char c = div[i];
    if ((c == 'j' || c == 'J') && startsWithNoCase(i, "javascript:")) return false;
    if (!in_tag) {
      if (c == '<') {
        in_tag = true;
        for (std::string_view tag : {"script", "object", "embed", "iframe", "form", "applet"}) {
          if (startsWithNoCase(i + 1, tag)) return false;
        }
        has_div = has_div || startsWithNoCase(i + 1, "div");
      }
      continue;
    }
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      in_tag = false;
    } else if ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && i + 3 < div.size() &&
               lower(div[i + 1]) == 'o' && lower(div[i + 2]) == 'n') {
      size_t j = i + 3;
      while (j < div.size() && lower(div[j]) >= 'a' && lower(div[j]) <= 'z') ++j;
      while (j < div.size() && (div[j] == ' ' || div[j] == '\t')) ++j;
      if (j > i + 3 && j < div.size() && div[j] == '=') return false;
    }
  }
  return has_div;
}

// txt-2: some non-whitespace text outside the tags.
bool narrativeHasContent(std::string_view div) {
  bool in_tag = false;
  for (char c : div) {
    if (c == '<') in_tag = true;
    else if (c == '>') in_tag = false;
    else if (!in_tag && c != ' ' && c != '\t' && c != '\n' && c != '\r') return true;
  }
  return containsNoCase(div, "<img");
}

namespace {

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t depth = 0, start = 0;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '(') ++depth;
    if (c == ')' && depth > 0) --depth;
    if (c == '.' && depth == 0) {
      segments.push_back(path.substr(start, i - start));
      start = i + 1;
    }
  }
  segments.push_back(path.substr(start));
  return segments;
}

// "extension('http://x')" -> "http://x"
std::optional<std::string_view> extensionFilter(std::string_view segment) {
  constexpr std::string_view kPrefix = "extension(";
  if (segment.compare(0, kPrefix.size(), kPrefix) != 0 || segment.size() < kPrefix.size() + 3) return std::nullopt;
  std::string_view inner = segment.substr(kPrefix.size(), segment.size() - kPrefix.size() - 1);
  if (inner.size() >= 2 && (inner.front() == '\'' || inner.front() == '"')) inner = inner.substr(1, inner.size() - 2);
  return inner;
}

// Instance values at a discriminator path below `item` (arrays flattened). Returns false when
// the path uses something we cannot follow (resolve()).
bool valuesAt(const json::Value& item, std::string_view path, std::vector<const json::Value*>& out) {
  std::vector<const json::Value*> current{&item};
  for (std::string_view segment : splitPath(path)) {
    if (segment == "$this" || segment.compare(0, 7, "ofType(") == 0) continue;
    if (segment == "resolve()") return false;
    std::vector<const json::Value*> next;
    auto filter = extensionFilter(segment);
    std::string_view name = filter ? std::string_view("extension") : segment;
    for (const json::Value* node : current) {
      if (!node->IsObject()) continue;
      const json::Value* child = json::find(*node, name);
      if (!child) {
        // A choice element named without its type: the first member with that prefix.
        for (auto it = node->MemberBegin(); it != node->MemberEnd() && !child; ++it) {
          std::string_view member(it->name.GetString(), it->name.GetStringLength());
          if (member.size() > name.size() && member.compare(0, name.size(), name) == 0 &&
              std::isupper(static_cast<unsigned char>(member[name.size()]))) {
            child = &it->value;
          }
        }
      }
      if (!child) continue;
      auto push = [&](const json::Value& value) {
        if (filter && (!value.IsObject() || json::getString(value, "url") != *filter)) return;
        next.push_back(&value);
      };
      if (child->IsArray()) {
        for (const json::Value& value : child->GetArray()) push(value);
      } else {
        push(*child);
      }
    }
    current = std::move(next);
  }
  out = std::move(current);
  return true;
}

// Deep "contains" comparison: every member of `pattern` is matched in `value`; arrays match when
// each pattern item matches some value item. Numbers compare by value.
bool matchesPattern(const json::Value& value, const json::Value& pattern) {
  if (json::isNumber(pattern)) {
    return json::isNumber(value) && json::numberAsDouble(value) == json::numberAsDouble(pattern);
  }
  if (json::isString(pattern)) return json::isString(value) && json::stringView(value) == json::stringView(pattern);
  if (pattern.IsBool()) return value.IsBool() && value.GetBool() == pattern.GetBool();
  if (pattern.IsArray()) {
    if (!value.IsArray()) return pattern.Size() == 1 && matchesPattern(value, pattern[0]);
    for (const json::Value& wanted : pattern.GetArray()) {
      bool found = false;
      for (const json::Value& candidate : value.GetArray()) found = found || matchesPattern(candidate, wanted);
      if (!found) return false;
    }
    return true;
  }
  if (pattern.IsObject()) {
    if (!value.IsObject()) return false;
    for (auto it = pattern.MemberBegin(); it != pattern.MemberEnd(); ++it) {
      const json::Value* member = json::find(value, std::string_view(it->name.GetString(), it->name.GetStringLength()));
      if (!member || !matchesPattern(*member, it->value)) return false;
    }
    return true;
  }
  return value.IsNull() && pattern.IsNull();
}

// Exact equality for fixed[x]: same members, no extra ones.
bool matchesFixed(const json::Value& value, const json::Value& fixed) {
  if (fixed.IsObject()) {
    if (!value.IsObject() || value.MemberCount() != fixed.MemberCount()) return false;
  }
  if (fixed.IsArray() && (!value.IsArray() || value.Size() != fixed.Size())) return false;
  return matchesPattern(value, fixed);
}

// The element of `slice` a discriminator path designates, or nullptr when the slice does not
// constrain that far.
const ElementPlan* elementAt(const ElementPlan& slice, std::string_view path) {
  const ElementPlan* current = &slice;
  for (std::string_view segment : splitPath(path)) {
    if (segment == "$this" || segment.compare(0, 7, "ofType(") == 0) continue;
    auto filter = extensionFilter(segment);
    std::string_view name = filter ? std::string_view("extension") : segment;
    const ElementPlan* next = nullptr;
    for (const ElementPlan* child : current->children) {
      if (child->name == name) next = child;
    }
    // Constraints may sit in the slices of the element only (code.coding:SBPCode.code).
    for (size_t index = 0; !next && index < current->slices.size(); ++index) {
      for (const ElementPlan* child : current->slices[index]->children) {
        if (child->name == name) next = child;
      }
    }
    if (!next) return nullptr;
    if (filter) {
      const ElementPlan* chosen = nullptr;
      for (const ElementPlan* candidate : next->slices) {
        for (const TypeRef& type : candidate->types) {
          for (const std::string& profile : type.profiles) {
            if (definitions::canonicalUrl(profile) == *filter) chosen = candidate;
          }
        }
      }
      if (!chosen) return nullptr;
      next = chosen;
    }
    current = next;
  }
  return current;
}

std::string describeValue(const json::Value& value) {
  if (json::isString(value)) return std::string(json::stringView(value));
  if (json::isNumber(value)) return json::numberText(value);
  return json::serialize(value);
}

}  // namespace

bool InstanceWalker::matchesSlice(const json::Value* value, std::string_view type,
                                  const ElementPlan& element, const ElementPlan& slice,
                                  const StructurePlan& plan) {
  if (!value) return false;
  for (const Discriminator& discriminator : element.slicing->discriminators) {
    const std::string& path = discriminator.path;
    std::vector<const json::Value*> found;
    if (!valuesAt(*value, path, found)) return false;
    const ElementPlan* target = elementAt(slice, path);
    if (discriminator.type == "exists") {
      if (!target) continue;
      if (target->min > 0 && found.empty()) return false;
      if (target->max == 0 && !found.empty()) return false;
      continue;
    }
    if (discriminator.type == "type") {
      std::string_view actual = type;
      if (path != "$this" && !found.empty() && found.front()->IsObject()) {
        if (auto resource_type = json::getString(*found.front(), "resourceType")) actual = *resource_type;
      }
      if (path == "$this" && value->IsObject()) {
        if (auto resource_type = json::getString(*value, "resourceType")) actual = *resource_type;
      }
      const ElementPlan* typed = target ? target : &slice;
      bool ok = false;
      for (const TypeRef& ref : typed->types) ok = ok || ref.code == actual;
      if (!ok && !typed->types.empty()) return false;
      continue;
    }
    if (discriminator.type == "profile") {
      const ElementPlan* typed = target ? target : &slice;
      std::vector<std::string> profiles;
      for (const TypeRef& ref : typed->types) {
        profiles.insert(profiles.end(), ref.profiles.begin(), ref.profiles.end());
      }
      if (profiles.empty()) continue;
      bool ok = false;
      for (const json::Value* node : found) {
        for (const std::string& url : profiles) ok = ok || conformsTo(*node, url, &plan);
      }
      if (!ok) return false;
      continue;
    }
    // value / pattern
    const json::Value* expected = nullptr;
    std::string expected_url;
    if (target) expected = target->fixed ? target->fixed : target->pattern;
    if (!expected && (path == "url" || (path.size() > 4 && path.compare(path.size() - 4, 4, ".url") == 0))) {
      // Extension slices name their definition in type.profile rather than fixing url.
      std::string_view owner_path = path == "url" ? std::string_view("$this") : std::string_view(path).substr(0, path.size() - 4);
      const ElementPlan* owner = elementAt(slice, owner_path);
      if (owner) {
        for (const TypeRef& ref : owner->types) {
          if (!ref.profiles.empty()) expected_url = std::string(definitions::canonicalUrl(ref.profiles.front()));
        }
      }
    }
    if (!expected_url.empty()) {
      bool ok = false;
      for (const json::Value* node : found) ok = ok || (json::isString(*node) && json::stringView(*node) == expected_url);
      if (!ok) return false;
      continue;
    }
    if (!expected && target && target != &slice &&
        (!target->children.empty() || !target->slices.empty())) {
      // No fixed/pattern value at the path, but the slice constrains what is below it (e.g.
      // code.coding slices with fixed system and code): the value matches when it conforms.
      bool ok = false;
      for (const json::Value* node : found) ok = ok || (node->IsObject() && conformsToElement(*node, *target, plan));
      if (!ok) return false;
      continue;
    }
    if (!expected) {
      if (target && target->binding && target->binding->strength == BindingStrength::kRequired) {
        const terminology::Terminology& terminology = validator_.terminology();
        const terminology::Expansion& expansion = terminology.expand(target->binding->value_set);
        bool ok = false;
        for (const json::Value* node : found) {
          if (json::isString(*node)) {
            ok = ok || terminology.contains(expansion, "", json::stringView(*node)) == terminology::Membership::kMember;
          } else if (node->IsObject()) {
            std::vector<const json::Value*> codings;
            if (const json::Value* list = json::find(*node, "coding"); list && list->IsArray()) {
              for (const json::Value& coding : list->GetArray()) codings.push_back(&coding);
            } else {
              codings.push_back(node);
            }
            for (const json::Value* coding : codings) {
              auto system = json::getString(*coding, "system");
              auto code = json::getString(*coding, "code");
              if (code) {
                ok = ok || terminology.contains(expansion, system.value_or(""), *code) == terminology::Membership::kMember;
              }
            }
          }
        }
        if (!ok) return false;
      }
      continue;
    }
    bool ok = false;
    for (const json::Value* node : found) {
      ok = ok || (discriminator.type == "value" && target->fixed ? matchesFixed(*node, *expected)
                                                                 : matchesPattern(*node, *expected));
    }
    if (!ok) return false;
  }
  return true;
}

bool InstanceWalker::conformsToElement(const json::Value& value, const ElementPlan& element,
                                       const StructurePlan& plan) {
  IssueList scratch;
  InstanceWalker walker(validator_, scratch);
  walker.path_ = path_;
  walker.resource_ = resource_;
  walker.root_resource_ = root_resource_;
  walker.container_ = container_;
  walker.walkObject(value, element, plan, false);
  return !scratch.hasErrors();
}

bool InstanceWalker::conformsTo(const json::Value& value, const std::string& url,
                                const StructurePlan* from) {
  const StructurePlan* profile = plans_.byUrl(url, from);
  if (!profile || !profile->root) return false;
  IssueList scratch;
  InstanceWalker walker(validator_, scratch);
  walker.path_ = path_;
  walker.resource_ = resource_;
  walker.root_resource_ = root_resource_;
  walker.container_ = container_;
  if (profile->kind == "resource") {
    std::vector<std::string> profiles{profile->versionedUrl()};
    walker.validateResource(value, &profiles);
  } else if (value.IsObject()) {
    walker.walkObject(value, *profile->root, *profile, false);
  }
  return !scratch.hasErrors();
}

void InstanceWalker::dispatchItem(const json::Value* value, const json::Value* extension,
                                  const ElementPlan& element, std::string_view type,
                                  const StructurePlan& plan, bool resource_id,
                                  std::vector<uint32_t>& slice_counts) {
  if (!element.slicing || element.slices.empty()) {
    validateItem(value, extension, element, type, plan, resource_id);
    return;
  }
  const ElementPlan* chosen = nullptr;
  for (size_t index = 0; index < element.slices.size(); ++index) {
    const ElementPlan& slice = *element.slices[index];
    // A type slice of a choice element is named after the concrete type (valueQuantity).
    if (element.choice && element.slicing->discriminators.size() == 1 &&
        element.slicing->discriminators.front().type == "type") {
      bool ok = false;
      for (const TypeRef& ref : slice.types) ok = ok || ref.code == type;
      if (!ok) continue;
    } else if (!matchesSlice(value, type, element, slice, plan)) {
      continue;
    }
    chosen = &slice;
    ++slice_counts[index];
    break;
  }
  if (chosen) {
    validateItem(value, extension, *chosen, type, plan, resource_id);
    return;
  }
  validateItem(value, extension, element, type, plan, resource_id);
  if (element.slicing->rules == SlicingRules::kClosed) {
    report(Severity::kError, "structure",
           "This element does not match any known slice defined in the profile " +
               plan.versionedUrl() + " and slicing is CLOSED: " + element.path);
  }
}

void InstanceWalker::checkSliceCounts(const ElementPlan& element,
                                      const std::vector<uint32_t>& slice_counts,
                                      size_t parent_size, const StructurePlan& plan) {
  for (size_t index = 0; index < slice_counts.size(); ++index) {
    const ElementPlan& slice = *element.slices[index];
    uint32_t found = slice_counts[index];
    std::string name = element.path + ":" + slice.slice_name;
    if (found < slice.min) {
      reportAt(Severity::kError, "structure", path_.substr(0, parent_size),
               found == 0 ? "Slice '" + name + "': a matching slice is required, but not found (from " +
                                plan.versionedUrl() + ")"
                          : name + ": minimum required = " + std::to_string(slice.min) +
                                ", but only found " + std::to_string(found) + " (from " +
                                plan.versionedUrl() + ")");
    }
    if (slice.max != UINT32_MAX && found > slice.max) {
      reportAt(Severity::kError, "structure", path_.substr(0, parent_size),
               name + ": max allowed = " + std::to_string(slice.max) + ", but found " +
                   std::to_string(found) + " (from " + plan.versionedUrl() + ")");
    }
  }
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
  if (type.empty() && element.content_ref && value && value->IsObject()) {
    walkObject(*value, *element.content_ref, plan, false);
    return;
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
      }
    }
    if (!element.constraints.empty()) checkConstraints(element.constraints, value, extension, type);
    if (value && element.binding && json::isString(*value)) checkBinding(*value, type, *element.binding);
    if (value) checkFixedAndPattern(*value, element, plan);
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

void InstanceWalker::checkReferenceTarget(const json::Value& reference, const ElementPlan& element) {
  auto text = json::getString(reference, "reference");
  if (!text || text->empty() || (*text)[0] == '#' || text->compare(0, 4, "urn:") == 0) return;
  std::vector<std::string_view> allowed;
  for (const TypeRef& ref : element.types) {
    if (ref.code != "Reference") continue;
    for (const std::string& target : ref.target_profiles) {
      std::string_view url = definitions::canonicalUrl(target);
      const StructurePlan* plan = plans_.byUrl(url);
      std::string_view type = plan && !plan->type.empty() ? std::string_view(plan->type)
                                                          : url.substr(url.rfind('/') + 1);
      if (type == "Resource" || type == "DomainResource") return;
      allowed.push_back(type);
    }
  }
  if (allowed.empty()) return;
  std::string_view url = *text;
  if (size_t query = url.find('?'); query != std::string_view::npos) return;  // conditional reference
  if (size_t history = url.find("/_history/"); history != std::string_view::npos) url = url.substr(0, history);
  size_t slash = url.rfind('/');
  if (slash == std::string_view::npos) return;
  std::string_view rest = url.substr(0, slash);
  size_t type_slash = rest.rfind('/');
  std::string_view type = type_slash == std::string_view::npos ? rest : rest.substr(type_slash + 1);
  if (std::find(allowed.begin(), allowed.end(), type) != allowed.end()) return;
  if (!validator_.model()->isResourceType(type)) return;  // not a [type]/[id] reference
  std::string list;
  for (std::string_view name : allowed) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  report(Severity::kError, "structure",
         "Invalid Resource target type. Found " + std::string(type) + ", but expected one of (" + list + ")");
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

void InstanceWalker::checkBinding(const json::Value& value, std::string_view type,
                                  const Binding& binding) {
  if (binding.strength != BindingStrength::kRequired &&
      binding.strength != BindingStrength::kExtensible) {
    return;
  }
  if (binding.value_set.empty()) return;
  const terminology::Terminology& terminology = validator_.terminology();
  const terminology::Expansion& expansion = terminology.expand(binding.value_set);
  bool required = binding.strength == BindingStrength::kRequired;
  if (!expansion.found) {
    // Never silent: the HL7 validator warns that the value set could not be found.
    report(validator_.uncheckedBindingSeverity(), "not-supported",
           "The value set '" + binding.value_set + "' of the " + (required ? "required" : "extensible") +
               " binding is not available locally, so the code was not checked");
    return;
  }
  Severity severity = required ? Severity::kError : Severity::kWarning;
  std::string where = "the value set '" + expansion.label() + "' (" + expansion.versionedUrl() + ")";
  // A required binding whose value set cannot be expanded locally far enough to decide (an
  // imported value set or a code system that is not available) reports the code as not checked.
  auto unchecked = [&](const std::string& label) {
    if (!required) return;
    report(validator_.uncheckedBindingSeverity(), "not-supported",
           "The code " + label + " was not checked against " + where +
               ": the value set cannot be fully expanded locally (it needs a code system or value set "
               "that is not available)");
  };
  if (type == "code") {
    std::string_view code = json::stringView(value);
    terminology::Membership state = terminology.contains(expansion, "", code);
    if (state == terminology::Membership::kUnknown) unchecked("'" + std::string(code) + "'");
    if (state == terminology::Membership::kNotMember) {
      report(severity, "code-invalid",
             "The value provided ('" + std::string(code) + "') was not found in " + where +
                 (required ? ", and a code is required from this value set"
                           : ", and a code should come from this value set unless it has no suitable code"));
    }
    return;
  }
  auto codingState = [&](const json::Value& coding, std::string& label) {
    std::string system(json::getString(coding, "system").value_or(""));
    std::string code(json::getString(coding, "code").value_or(""));
    label = system + "#" + code;
    if (code.empty()) return terminology::Membership::kUnknown;
    return terminology.contains(expansion, system, code);
  };
  if (type == "Coding" || type == "Quantity") {
    std::string label;
    terminology::Membership state = codingState(value, label);
    if (state == terminology::Membership::kUnknown && label != "#" && label.back() != '#') unchecked(label);
    if (state == terminology::Membership::kNotMember) {
      report(severity, "code-invalid",
             std::string(type == "Coding" ? "The Coding provided (" : "The code provided (") + label +
                 ") was not found in " + where +
                 (required ? ", and a code is required from this value set"
                           : ", and a code should come from this value set unless it has no suitable code"));
    }
    return;
  }
  if (type == "CodeableConcept") {
    const json::Value* codings = json::find(value, "coding");
    if (!codings || !codings->IsArray() || codings->Empty()) return;
    std::string labels;
    bool undecided = false;
    for (const json::Value& coding : codings->GetArray()) {
      if (!coding.IsObject()) return;
      std::string label;
      terminology::Membership state = codingState(coding, label);
      if (state == terminology::Membership::kMember) return;
      if (state == terminology::Membership::kUnknown) {
        if (label.back() == '#') return;  // a coding without a code (text only)
        undecided = true;
      }
      if (!labels.empty()) labels += ", ";
      labels += label;
    }
    if (undecided) {
      unchecked("(" + labels + ")");
      return;
    }
    report(severity, "code-invalid",
           "None of the codings provided are in " + where +
               (required ? ", and a coding from this value set is required"
                         : ", and a coding should come from this value set unless it has no suitable code") +
               " (codes = " + labels + ")");
  }
}

void InstanceWalker::checkCoding(const json::Value& coding) {
  auto system = json::getString(coding, "system");
  auto code = json::getString(coding, "code");
  if (!system || system->empty()) return;
  const terminology::Terminology& terminology = validator_.terminology();
  const terminology::CodeSystemIndex* index = terminology.codeSystem(*system);
  if (!index) {
    if (validator_.registry().valueSet(*system)) {
      reportAt(Severity::kError, "invalid", path_ + ".system",
               "The Coding references a value set, not a code system ('" + std::string(*system) + "')");
    }
    return;
  }
  if (code && index->complete() && !index->has(*code)) {
    reportAt(Severity::kError, "code-invalid", path_ + ".code",
             "Unknown code '" + std::string(*code) + "' in the CodeSystem '" + std::string(*system) +
                 "' version '" + (index->version.empty() ? std::string("null") : index->version) + "'");
    return;
  }
  auto display = json::getString(coding, "display");
  if (!code || !display) return;
  auto known = index->display.find(std::string(*code));
  if (known == index->display.end() || known->second.empty()) return;
  auto normalized = [](std::string_view text) {
    std::string out;
    for (char c : text) {
      if (c == ' ' || c == '\t' || c == '\n') {
        if (!out.empty() && out.back() != ' ') out += ' ';
      } else {
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  };
  std::string given = normalized(*display);
  std::string expected = normalized(known->second);
  // Some R4 core code systems (v3-TribalEntityUS) carry displays cut at 50 characters; the full
  // display that starts with the cut one is the right one.
  bool truncated = known->second.size() == 50 && given.size() > expected.size() &&
                   given.compare(0, expected.size(), expected) == 0;
  if (given != expected && !truncated) {
    reportAt(Severity::kError, "invalid", path_ + ".display",
             "Wrong Display Name '" + std::string(*display) + "' for " + std::string(*system) + "#" +
                 std::string(*code) + ". Valid display is '" + known->second + "'");
  }
}

void InstanceWalker::validateComplex(const json::Value& value, const ElementPlan& element,
                                     std::string_view type, const StructurePlan& plan) {
  if (type == "Resource" || type == "DomainResource" || validator_.model()->isResourceType(type)) {
    contained_ = element.name == "contained";
    validateResource(value, nullptr);
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

void InstanceWalker::validateExtension(const json::Value& value, const ElementPlan& element,
                                       const StructurePlan& plan) {
  auto url = json::getString(value, "url");
  bool has_value = false;
  bool has_extensions = false;
  for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
    std::string_view name = memberName(it->name);
    if (name == "extension") has_extensions = true;
    if (name.size() > 5 && name.compare(0, 5, "value") == 0) has_value = true;
  }
  if (has_value == has_extensions) {
    // ext-1, checked natively.
    report(Severity::kError, "invariant",
           "Constraint failed: ext-1: 'Must have either extensions or value[x], not both'");
  }
  const StructurePlan* definition = nullptr;
  const ElementPlan* holder = nullptr;
  if (url && isAbsoluteUrl(*url)) {
    definition = plans_.byUrl(*url, &plan);
    if (!definition && !validator_.missingExtensionsPackage().empty() &&
        url->rfind("http://hl7.org/fhir/StructureDefinition/", 0) == 0) {
      // An HL7 extension from the extensions package a loaded IG depends on, which is not loaded.
      report(validator_.uncheckedBindingSeverity(), "not-supported",
             "The extension " + std::string(*url) + " was not checked: it is not an R4 core extension, and the " +
                 validator_.missingExtensionsPackage() + " package that a loaded IG depends on is not loaded");
    } else if (!definition) {
      report(Severity::kError, "structure",
             "The extension " + std::string(*url) + " could not be found so is not allowed here");
    } else if (!definition->root || definition->type != "Extension") {
      report(Severity::kError, "structure",
             "The extension " + std::string(*url) + " is not a usable Extension definition" +
                 (definition->error.empty() ? std::string() : " (" + definition->error + ")"));
      definition = nullptr;
    } else {
      holder = definition->root;
      checkExtensionContext(*definition);
    }
  } else if (url) {
    // A relative url names a sub-extension slice of the enclosing complex extension.
    for (const ElementPlan* slice : element.slices) {
      for (const ElementPlan* child : slice->children) {
        if (child->name == "url" && child->fixed && json::isString(*child->fixed) &&
            json::stringView(*child->fixed) == *url) {
          holder = slice;
          definition = &plan;
        }
      }
    }
  }
  if (!holder) {
    const StructurePlan* base = plans_.byType("Extension");
    if (!base || !base->root) return;
    definition = base;
    holder = base->root;
  }
  if (holder->children.empty() && holder == definition->root) return;
  walkObject(value, holder->children.empty() && holder->content_ref ? *holder->content_ref : *holder,
             *definition, false);
  if (!holder->constraints.empty()) checkConstraints(holder->constraints, &value, nullptr, "Extension");
}

void InstanceWalker::checkExtensionContext(const StructurePlan& definition) {
  const json::Value* contexts = json::find(*definition.definition, "context");
  if (!contexts || !contexts->IsArray() || contexts->Empty()) return;
  // Where we are: the owning element's path in its definition, its type, and the instance path
  // without indices; at a resource root, the resource type.
  std::vector<std::string> here;
  if (owner_) {
    here.push_back(owner_->path);
    here.emplace_back(owner_type_);
    if (owner_type_ == "BackboneElement") here.emplace_back("BackboneElement");
  } else if (current_resource_) {
    if (auto type = json::getString(*current_resource_, "resourceType")) here.emplace_back(*type);
    here.emplace_back("Resource");
    here.emplace_back("DomainResource");
  }
  std::string instance_path;
  {
    std::string_view path = path_;
    size_t cut = path.rfind(".extension");
    if (cut == std::string_view::npos) cut = path.rfind(".modifierExtension");
    if (cut != std::string_view::npos) path = path.substr(0, cut);
    bool skipping = false;
    for (char c : path) {
      if (c == '[') skipping = true;
      if (!skipping) instance_path += c;
      if (c == ']') skipping = false;
    }
    here.push_back(instance_path);
  }
  for (const json::Value& context : contexts->GetArray()) {
    auto type = json::getString(context, "type");
    auto expression = json::getString(context, "expression");
    if (!type || !expression || *type != "element") return;  // extension/fhirpath contexts: not judged
    std::string_view text = *expression;
    if (text == "Element" || text == "Base" || text.find_first_of("()") != std::string_view::npos) return;
    for (const std::string& candidate : here) {
      if (candidate == text) return;
    }
    // Paths through a data type ("Address.line" for Patient.address.line) and contexts naming a
    // child of the element ("ElementDefinition.type.code" on ElementDefinition.type, as the core
    // fhir-type extension is used) are accepted on the element's own name.
    if (owner_) {
      std::string_view own = owner_->path;
      own = own.substr(own.rfind('.') + 1);
      size_t start = 0;
      while (start <= text.size()) {
        size_t dot = text.find('.', start);
        std::string_view segment = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (start > 0 && segment == own) return;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
      }
    }
  }
  std::string where;
  for (const std::string& candidate : here) {
    if (candidate.empty()) continue;
    if (!where.empty()) where += ", ";
    where += candidate;
  }
  report(Severity::kError, "structure",
         "The extension " + definition.url + " is not allowed to be used at this point (this element is [" +
             where + "])");
}

void InstanceWalker::checkConstraints(const std::vector<Constraint>& constraints,
                                      const json::Value* value, const json::Value* extension,
                                      std::string_view type) {
  for (const Constraint& constraint : constraints) {
    const std::string& key = constraint.key;
    // Checked natively elsewhere: ele-1 (walkObject), ext-1 (validateExtension), dom-3
    // (checkContainedReferenced: the FHIRPath form walks descendants() of the whole resource
    // for each contained resource).
    if (key == "ele-1" || key == "ext-1" || key == "dom-3") continue;
    if (key == "ref-1") {
      // ref-1 natively: %rootResource differs between contained resources and Bundle entries in
      // the reference validator; a local reference '#id' must name a resource contained in the
      // resource that holds the reference (or its container).
      checkLocalReference(value, constraint);
      continue;
    }
    std::optional<bool> passed;
    if (key == "txt-1" || key == "txt-2") {
      // htmlChecks() natively: the FHIRPath form lowercases and regex-scans the whole div on every
      // evaluation, which dominated validation time.
      // Declared on Narrative.div (the xhtml string); accept the Narrative object too.
      const json::Value* div = value && value->IsObject() ? json::find(*value, "div") : value;
      if (!div || !json::isString(*div)) continue;
      passed = key == "txt-1" ? narrativeIsSafe(json::stringView(*div))
                              : narrativeHasContent(json::stringView(*div));
    } else if (key == "tim-9") {
      // tim-9 reads `when in ('C' | 'CM' | 'CD' | 'CV')` on a repeating `when`; strict FHIRPath
      // makes that an error (HL7 Jira FHIR-35990). The reference validator's `in` is true when
      // every left item is in the right collection; we evaluate it the same way.
      passed = true;
      if (value && value->IsObject() && json::find(*value, "offset")) {
        const json::Value* when = json::find(*value, "when");
        bool all_meal = when && when->IsArray() && !when->Empty();
        if (all_meal) {
          for (const json::Value& item : when->GetArray()) {
            std::string_view code = json::isString(item) ? json::stringView(item) : std::string_view();
            if (code != "C" && code != "CM" && code != "CD" && code != "CV") all_meal = false;
          }
        }
        passed = when && !all_meal;
      }
    } else {
      if (!constraint.expression) continue;
      context_.resource = resource_;
      context_.root_resource = root_resource_;
      // Backbone elements have no type of their own in the FHIRPath model: navigate them untyped.
      // Resources typed as Resource: let FHIRPath infer the type from resourceType.
      std::string_view item_type = type == "BackboneElement" || type == "Element" || type == "Resource" ||
                                           type == "DomainResource"
                                       ? std::string_view()
                                       : type;
      undecided_value_set_.clear();
      auto result = fhirpath::evaluateBoolean(
          *constraint.expression, fhirpath::Item::node(value, item_type, extension), context_);
      if (!result.ok()) {
        report(Severity::kInformation, "informational",
               "Constraint " + key + " could not be evaluated: " + result.message());
        continue;
      }
      passed = *result;
      if (passed.has_value() && !*passed && !undecided_value_set_.empty()) {
        // memberOf() could not be answered locally: the failure may be ours, not the data's.
        report(validator_.uncheckedBindingSeverity(), "not-supported",
               "Constraint " + key + " was not checked: it needs the value set '" + undecided_value_set_ +
                   "', which cannot be expanded locally ('" + constraint.human + "')");
        continue;
      }
    }
    if (passed.has_value() && !*passed) {
      report(constraint.severity, "invariant",
             "Constraint failed: " + key + ": '" + constraint.human + "'");
    }
  }
}

namespace {

// Collects reference-like strings: `reference` values and any string starting with '#'.
void collectLocalReferences(const json::Value& value, std::vector<std::string_view>& out,
                            bool& references_container) {
  if (json::isString(value)) {
    std::string_view text = json::stringView(value);
    if (!text.empty() && text[0] == '#') {
      if (text.size() == 1) references_container = true;
      out.push_back(text.substr(1));
    }
  } else if (value.IsObject()) {
    for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) {
      const json::Value& child = it->value;
      if (json::isString(child)) {
        std::string_view text = json::stringView(child);
        if (!text.empty() && text[0] == '#') {
          if (text.size() == 1) references_container = true;
          out.push_back(text.substr(1));
        }
      } else {
        collectLocalReferences(child, out, references_container);
      }
    }
  } else if (value.IsArray()) {
    for (const json::Value& item : value.GetArray()) {
      if (json::isString(item)) {
        std::string_view text = json::stringView(item);
        if (!text.empty() && text[0] == '#') out.push_back(text.substr(1));
      } else {
        collectLocalReferences(item, out, references_container);
      }
    }
  }
}

}  // namespace

void InstanceWalker::checkLocalReference(const json::Value* value, const Constraint& constraint) {
  if (!value || !value->IsObject() || !container_) return;
  auto reference = json::getString(*value, "reference");
  if (!reference || reference->size() < 2 || (*reference)[0] != '#') return;
  std::string_view id = reference->substr(1);
  if (const json::Value* contained = json::find(*container_, "contained"); contained && contained->IsArray()) {
    for (const json::Value& item : contained->GetArray()) {
      if (item.IsObject() && json::getString(item, "id") == id) return;
    }
  }
  report(constraint.severity, "invariant",
         "Constraint failed: ref-1: '" + constraint.human + "' (url: " + std::string(id) + ")");
}

void InstanceWalker::checkContainedReferenced(const json::Value& resource) {
  // dom-3: every contained resource is referenced from elsewhere in the resource (by '#id'), or
  // itself refers to its container ('#').
  const json::Value* contained = json::find(resource, "contained");
  if (!contained || !contained->IsArray() || contained->Empty()) return;
  std::vector<std::string_view> references;
  bool unused = false;
  for (auto it = resource.MemberBegin(); it != resource.MemberEnd(); ++it) {
    if (it->name != "contained") collectLocalReferences(it->value, references, unused);
  }
  // References between contained resources count too.
  std::vector<std::string_view> inner;
  for (const json::Value& item : contained->GetArray()) {
    bool self = false;
    collectLocalReferences(item, inner, self);
  }
  for (rapidjson::SizeType index = 0; index < contained->Size(); ++index) {
    const json::Value& item = (*contained)[index];
    if (!item.IsObject()) continue;
    auto id = json::getString(item, "id");
    bool to_container = false;
    std::vector<std::string_view> own;
    collectLocalReferences(item, own, to_container);
    bool referenced = to_container;
    if (id) {
      for (std::string_view ref : references) referenced = referenced || ref == *id;
      for (std::string_view ref : inner) referenced = referenced || ref == *id;
    }
    if (!referenced) {
      report(Severity::kError, "invariant",
             "Constraint failed: dom-3: 'If the resource is contained in another resource, it "
             "SHALL be referred to from elsewhere in the resource or SHALL refer to the "
             "containing resource'");
      return;
    }
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
  std::vector<std::string> type_ids;
  for (const json::Value& entry : entries.GetArray()) {
    if (!entry.IsObject()) continue;
    if (auto full_url = json::getString(entry, "fullUrl")) full_urls.push_back(*full_url);
    if (const json::Value* resource = json::find(entry, "resource"); resource && resource->IsObject()) {
      auto type = json::getString(*resource, "resourceType");
      auto id = json::getString(*resource, "id");
      if (type && id) type_ids.push_back(std::string(*type) + "/" + std::string(*id));
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
        std::string_view key = reference.substr(0, reference.find("/_history/"));
        found = std::find(type_ids.begin(), type_ids.end(), key) != type_ids.end();
        for (std::string_view url : full_urls) {
          found = found || (url.size() > key.size() && url.compare(url.size() - key.size(), key.size(), key) == 0 &&
                            url[url.size() - key.size() - 1] == '/');
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
