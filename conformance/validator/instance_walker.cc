// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/instance_walker.h"

#include "conformance/validator/primitives.h"
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
    : validator_(validator), plans_(validator.plans()), issues_(issues) {}

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
  validateAgainst(resource, *plan);

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
  if (top_level) path_.clear();
}

void InstanceWalker::validateAgainst(const json::Value& resource, const StructurePlan& plan) {
  walkObject(resource, *plan.root, plan, /*resource_root=*/true);
  if (plan.type == "Bundle" && plan.derivation == "specialization") checkBundle(resource);
}

void InstanceWalker::walkObject(const json::Value& object, const ElementPlan& holder,
                                const StructurePlan& plan, bool resource_root) {
  if (object.MemberCount() == 0) {
    report(Severity::kError, "structure", "Object must have some content");
    return;
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
    if (Member* existing = findByName(base)) {
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

  // Validate members and count occurrences per element for cardinality.
  struct Count {
    const ElementPlan* element;
    uint32_t count;
  };
  std::vector<Count> counts;
  counts.reserve(count);
  for (size_t index = 0; index < count; ++index) {
    const Member& member = at(index);
    uint32_t found = 0;
    validateMember(member, plan, resource_root, found);
    auto existing = std::find_if(counts.begin(), counts.end(),
                                 [&](const Count& c) { return c.element == member.element; });
    if (existing == counts.end()) {
      counts.push_back({member.element, found});
    } else {
      existing->count += found;
    }
  }
  for (const ElementPlan* child : holder.children) {
    uint32_t found = 0;
    for (const Count& c : counts) {
      if (c.element == child) found = c.count;
    }
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
  }
}

void InstanceWalker::validateMember(const Member& member, const StructurePlan& plan,
                                    bool resource_root, uint32_t& count) {
  const ElementPlan& element = *member.element;
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
        validateItem(item, item_extension, element, member.type, plan, resource_id);
      }
      path_.resize(base);
    }
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
  validateItem(value, extension, element, member.type, plan, resource_id);
}

void InstanceWalker::validateItem(const json::Value* value, const json::Value* extension,
                                  const ElementPlan& element, std::string_view type,
                                  const StructurePlan& plan, bool resource_id) {
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
    if (extension) {
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
}

void InstanceWalker::validateComplex(const json::Value& value, const ElementPlan& element,
                                     std::string_view type, const StructurePlan& plan) {
  if (type == "Resource" || type == "DomainResource") {
    validateResource(value, nullptr);
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
  const StructurePlan* type_plan = plans_.byType(type);
  if (!type_plan || !type_plan->root) {
    report(Severity::kError, "structure", "Unknown type '" + std::string(type) + "'");
    return;
  }
  walkObject(value, *type_plan->root, *type_plan, false);
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
}

}  // namespace fhir::validator
