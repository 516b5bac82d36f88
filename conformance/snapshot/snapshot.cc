// SPDX-License-Identifier: Apache-2.0
#include "conformance/snapshot/snapshot.h"

#include <cctype>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace fhir::snapshot {
namespace {

using json::Allocator;
using json::Value;

constexpr std::string_view kCoreSdPrefix = "http://hl7.org/fhir/StructureDefinition/";
constexpr std::string_view kSystemTypePrefix = "http://hl7.org/fhirpath/System.";
constexpr std::string_view kFhirTypeExtension =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

// An element of a base definition as published: read-only JSON owned by the caller's
// definitions (the resolver keeps them alive while we run).
struct BaseNode {
  const Value* element = nullptr;
  std::string path;
  std::string name;        // last path segment, e.g. "value[x]"
  std::string slice_name;  // empty unless this is a slice
  std::vector<std::unique_ptr<BaseNode>> children;
  std::vector<std::unique_ptr<BaseNode>> slices;
};

// An element of the snapshot being built. `origin` is the base element it started from; a new
// slice starts again from the origin of the element it slices, not from that element as
// constrained by the differential, which is how the published snapshots read.
struct Node {
  Value element;
  const BaseNode* origin = nullptr;
  std::string name;
  std::string slice_name;
  bool children_known = false;
  std::vector<std::unique_ptr<Node>> children;
  std::vector<std::unique_ptr<Node>> slices;
  // Base children materialised from the element's type when the differential reaches below an
  // element whose base lists no children (Patient.identifier.system).
  std::unique_ptr<BaseNode> expanded_base;
};

std::string_view lastSegment(std::string_view path) {
  size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

std::string_view parentPath(std::string_view path) {
  size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : path.substr(0, dot);
}

std::string_view stringMember(const Value& object, std::string_view key) {
  auto text = json::getString(object, key);
  return text ? *text : std::string_view();
}

// A binding only means something on coded types; the Publisher drops it when a type
// constraint leaves none (SDOHCC Group.characteristic:HasSDOHCondition.value[x] as Reference).
void dropBindingWithoutCodedType(Value& element) {
  const Value* types = json::find(element, "type");
  if (types == nullptr || !types->IsArray() || json::find(element, "binding") == nullptr) return;
  for (const Value& type : types->GetArray()) {
    auto code = json::getString(type, "code");
    if (!code) continue;
    if (*code == "code" || *code == "Coding" || *code == "CodeableConcept" || *code == "Quantity" ||
        *code == "string" || *code == "uri") {
      return;
    }
  }
  element.RemoveMember("binding");
}

bool isChoice(std::string_view name) {
  return name.size() > 3 && name.substr(name.size() - 3) == "[x]";
}

std::vector<std::string_view> splitSlices(std::string_view slice_name) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = slice_name.find('/', start);
    parts.push_back(slice_name.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

// The slice `a/b` of `sliced`: re-slices live in the slices of the slice they refine.
BaseNode* findSlice(BaseNode& sliced, std::string_view slice_name) {
  BaseNode* current = &sliced;
  std::string full_name;
  for (std::string_view part : splitSlices(slice_name)) {
    if (!full_name.empty()) full_name += '/';
    full_name += part;
    BaseNode* next = nullptr;
    for (auto& slice : current->slices) {
      if (slice->slice_name == full_name) next = slice.get();
    }
    if (next == nullptr) return nullptr;
    current = next;
  }
  return current;
}

// Builds the element tree of a published snapshot. Children follow their parent, slices follow
// the element they slice (and its children), so a stack of open elements is enough.
Result<std::unique_ptr<BaseNode>> buildBaseTree(const Value& elements, std::string_view where) {
  if (!elements.IsArray() || elements.Empty()) {
    return Error{std::string(where) + ": snapshot has no elements"};
  }
  auto root = std::make_unique<BaseNode>();
  root->element = &elements[0];
  root->path = std::string(stringMember(elements[0], "path"));
  root->name = root->path;
  std::vector<BaseNode*> open{root.get()};
  for (rapidjson::SizeType index = 1; index < elements.Size(); ++index) {
    const Value& element = elements[index];
    std::string_view path = stringMember(element, "path");
    std::string_view parent = parentPath(path);
    while (open.size() > 1 && open.back()->path != parent) open.pop_back();
    if (open.back()->path != parent) {
      return Error{std::string(where) + ": snapshot element '" + std::string(path) +
                   "' does not follow its parent"};
    }
    auto node = std::make_unique<BaseNode>();
    node->element = &element;
    node->path = std::string(path);
    node->name = std::string(lastSegment(path));
    node->slice_name = std::string(stringMember(element, "sliceName"));
    BaseNode* added = node.get();
    BaseNode* parent_node = open.back();
    if (node->slice_name.empty()) {
      parent_node->children.push_back(std::move(node));
    } else {
      BaseNode* sliced = nullptr;
      for (auto& child : parent_node->children) {
        if (child->name == node->name) sliced = child.get();
      }
      if (sliced == nullptr) {
        return Error{std::string(where) + ": slice '" + node->slice_name + "' of '" +
                     std::string(path) + "' precedes the element it slices"};
      }
      std::string_view slice_name = node->slice_name;
      size_t slash = slice_name.rfind('/');
      if (slash != std::string_view::npos) {
        BaseNode* outer = findSlice(*sliced, slice_name.substr(0, slash));
        if (outer == nullptr) {
          return Error{std::string(where) + ": re-slice '" + node->slice_name +
                       "' without its slice"};
        }
        sliced = outer;
      }
      sliced->slices.push_back(std::move(node));
    }
    open.push_back(added);
  }
  return root;
}

// One step of an element id: `component:systolic` is {component, systolic}.
struct Segment {
  std::string name;
  std::string slice;
};

class Generator {
 public:
  Generator(const Value& profile, const Resolver& resolve, Allocator& allocator)
      : profile_(profile), resolve_(resolve), allocator_(allocator) {}

  Result<Value> run();

 private:
  std::unique_ptr<Node> clone(const BaseNode& base, bool with_slices);
  Status ensureChildren(Node& node, std::string_view where);
  Result<Node*> locate(const std::vector<Segment>& segments, std::string_view where);
  Node* findChild(Node& parent, std::string_view name, std::string_view where,
                  std::string& renamed_type, Status& status);
  Result<Node*> chooseType(Node& choice, const std::string& type_suffix, bool inside_slice,
                           std::string_view where);
  std::unique_ptr<Node> newSlice(const Node& sliced, const std::string& slice_name);
  void narrowMandatoryTypeSlices(Node& node);
  void dropInheritedDatatypeChildren(Node& node);
  Status restrictToType(Node& choice, std::string_view type_suffix, std::string_view where);
  Status apply(Node& node, const Value& diff, std::string_view where);
  Status mergeTypes(Node& node, const Value& diff_types, std::string_view where);
  bool typeAllowed(std::string_view code, const Value& base_type);
  const BaseNode* findBaseByPath(const BaseNode& node, std::string_view path) const;
  void emit(Node& node, const std::string& parent_id, const std::string& parent_path,
            Value& out);

  const Value& profile_;
  const Resolver& resolve_;
  Allocator& allocator_;
  std::unique_ptr<BaseNode> base_root_;
  std::unique_ptr<Node> root_;
  // Ids of choice elements (value[x]) the differential constrains under their own name.
  std::set<std::string> choices_in_differential_;
};

std::unique_ptr<Node> Generator::clone(const BaseNode& base, bool with_slices) {
  auto node = std::make_unique<Node>();
  node->element.CopyFrom(*base.element, allocator_);
  node->origin = &base;
  node->name = base.name;
  node->slice_name = base.slice_name;
  node->children_known = !base.children.empty();
  for (const auto& child : base.children) node->children.push_back(clone(*child, true));
  if (with_slices) {
    for (const auto& slice : base.slices) node->slices.push_back(clone(*slice, true));
  }
  return node;
}

const BaseNode* Generator::findBaseByPath(const BaseNode& node, std::string_view path) const {
  if (node.path == path && node.slice_name.empty()) return &node;
  if (path.substr(0, node.path.size()) != node.path) return nullptr;
  for (const auto& child : node.children) {
    if (const BaseNode* found = findBaseByPath(*child, path)) return found;
  }
  return nullptr;
}

// Gives `node` its children: from a contentReference, or from the snapshot of its (single)
// type, or of the type's profile when it names one.
Status Generator::ensureChildren(Node& node, std::string_view where) {
  if (node.children_known) return Status::Ok();
  auto reference = json::getString(node.element, "contentReference");
  if (reference) {
    std::string_view target = *reference;
    size_t hash = target.find('#');
    if (hash != std::string_view::npos) target = target.substr(hash + 1);
    const BaseNode* referenced = findBaseByPath(*base_root_, target);
    if (referenced == nullptr) {
      return Error{std::string(where) + ": contentReference '" + std::string(*reference) +
                   "' names no element of the base"};
    }
    for (const auto& child : referenced->children) node.children.push_back(clone(*child, true));
    node.children_known = true;
    // Once its children are written out the element is no longer a reference to them: it
    // takes the referenced element's type, as the Publisher writes it (CARIN BB
    // ExplanationOfBenefit.adjudication becomes a BackboneElement).
    if (const Value* type = json::find(*referenced->element, "type")) {
      Value copied(*type, allocator_);
      node.element.RemoveMember("contentReference");
      node.element.RemoveMember("type");
      json::addMember(node.element, "type", std::move(copied), allocator_);
    }
    return Status::Ok();
  }
  const Value* types = json::find(node.element, "type");
  if (types == nullptr || !types->IsArray() || types->Empty()) {
    return Error{std::string(where) + ": element '" + node.name + "' has no type to descend into"};
  }
  std::string_view code = stringMember((*types)[0], "code");
  for (const Value& type : types->GetArray()) {
    if (stringMember(type, "code") != code) {
      return Error{std::string(where) + ": element '" + node.name +
                   "' has several types; constrain it to one before constraining its children"};
    }
  }
  if (code.substr(0, kSystemTypePrefix.size()) == kSystemTypePrefix) {
    return Error{std::string(where) + ": element '" + node.name + "' is a primitive value"};
  }
  std::string url;
  const Value* profiles = json::find((*types)[0], "profile");
  if (types->Size() == 1 && profiles != nullptr && profiles->IsArray() && profiles->Size() == 1 &&
      json::isString((*profiles)[0])) {
    url = std::string(json::stringView((*profiles)[0]));
  } else {
    url = std::string(kCoreSdPrefix) + std::string(code);
  }
  const Value* definition = resolve_(url);
  if (definition == nullptr) return Error{std::string(where) + ": unknown type '" + url + "'"};
  const Value* snapshot = json::find(*definition, "snapshot");
  const Value* elements = snapshot ? json::find(*snapshot, "element") : nullptr;
  if (elements == nullptr) {
    return Error{std::string(where) + ": type '" + url + "' has no snapshot"};
  }
  auto tree = buildBaseTree(*elements, url);
  if (!tree) return tree.error();
  node.expanded_base = std::move(tree.value());
  for (const auto& child : node.expanded_base->children) {
    node.children.push_back(clone(*child, true));
  }
  node.children_known = true;
  return Status::Ok();
}

// Restricts a choice element (value[x]) to the type named by a renamed path (valueQuantity).
Status Generator::restrictToType(Node& choice, std::string_view type_suffix,
                                 std::string_view where) {
  Value* types = json::find(choice.element, "type");
  if (types == nullptr || !types->IsArray()) {
    return Error{std::string(where) + ": '" + choice.name + "' has no types"};
  }
  for (rapidjson::SizeType index = 0; index < types->Size(); ++index) {
    std::string_view code = stringMember((*types)[index], "code");
    if (code.size() == type_suffix.size() && !code.empty() &&
        std::toupper(static_cast<unsigned char>(code[0])) == type_suffix[0] &&
        code.substr(1) == type_suffix.substr(1)) {
      Value kept((*types)[index], allocator_);
      types->Clear();
      types->PushBack(kept, allocator_);
      dropBindingWithoutCodedType(choice.element);
      return Status::Ok();
    }
  }
  return Error{std::string(where) + ": type '" + std::string(type_suffix) +
               "' is not allowed by the base element '" + choice.name + "'"};
}

Node* Generator::findChild(Node& parent, std::string_view name, std::string_view where,
                           std::string& renamed_type, Status& status) {
  renamed_type.clear();
  status = ensureChildren(parent, where);
  if (!status) return nullptr;
  for (auto& child : parent.children) {
    if (child->name == name) return child.get();
  }
  // A renamed choice: valueQuantity is value[x] taken as a Quantity.
  for (auto& child : parent.children) {
    std::string_view child_name = child->name;
    if (!isChoice(child_name)) continue;
    std::string_view stem = child_name.substr(0, child_name.size() - 3);
    if (name.size() > stem.size() && name.substr(0, stem.size()) == stem &&
        std::isupper(static_cast<unsigned char>(name[stem.size()]))) {
      renamed_type = std::string(name.substr(stem.size()));
      return child.get();
    }
  }
  status = Error{std::string(where) + ": no element '" + std::string(name) + "' in the base"};
  return nullptr;
}

// The IG Publisher reads a renamed choice (valueQuantity) two ways: among the children of a
// slice it restricts the choice to that type in place (blood pressure's
// component:systolic.value[x]); elsewhere it makes a type slice value[x]:valueQuantity under a
// `type`/`$this` slicing (body weight's value[x]:valueQuantity). We follow it.
Result<Node*> Generator::chooseType(Node& choice, const std::string& type_suffix,
                                    bool inside_slice, std::string_view where) {
  if (inside_slice) {
    Status restricted = restrictToType(choice, type_suffix, where);
    if (!restricted) return Error{restricted.message()};
    return &choice;
  }
  std::string slice_name = choice.name.substr(0, choice.name.size() - 3) + type_suffix;
  for (auto& slice : choice.slices) {
    if (slice->slice_name == slice_name) return slice.get();
  }
  if (json::find(choice.element, "slicing") == nullptr) {
    Value slicing(rapidjson::kObjectType);
    Value discriminator(rapidjson::kObjectType);
    json::addString(discriminator, "type", "type", allocator_);
    json::addString(discriminator, "path", "$this", allocator_);
    Value discriminators(rapidjson::kArrayType);
    discriminators.PushBack(discriminator, allocator_);
    json::addMember(slicing, "discriminator", std::move(discriminators), allocator_);
    slicing.AddMember("ordered", false, allocator_);
    json::addString(slicing, "rules", "open", allocator_);
    json::addMember(choice.element, "slicing", std::move(slicing), allocator_);
  }
  auto slice = newSlice(choice, slice_name);
  Status restricted = restrictToType(*slice, type_suffix, where);
  if (!restricted) return Error{restricted.message()};
  Node* added = slice.get();
  choice.slices.push_back(std::move(slice));
  return added;
}

std::unique_ptr<Node> Generator::newSlice(const Node& sliced, const std::string& slice_name) {
  auto slice = clone(*sliced.origin, false);
  slice->slice_name = slice_name;
  slice->element.RemoveMember("slicing");
  slice->element.RemoveMember("sliceName");
  json::addString(slice->element, "sliceName", slice_name, allocator_);
  // The base minimum counts all repetitions together; a slice is optional unless the
  // differential says otherwise (US Core Provenance.agent:ProvenanceAuthor is 0..*).
  slice->element.RemoveMember("min");
  json::addMember(slice->element, "min", json::makeNumber("0", allocator_), allocator_);
  return slice;
}

// A profile on a profile that names the slicing entry of a sliced data-type element
// (ExplanationOfBenefit.identifier, sliced in the base profile) without constraining its
// children gets the entry without the children the base profile had written out for it: the
// Publisher copies only the entry there (CARIN BB's EOB profiles on C4BB-ExplanationOfBenefit).
// Backbone elements keep their children.
void Generator::dropInheritedDatatypeChildren(Node& node) {
  if (!node.slice_name.empty() || node.slices.empty() || !node.children_known ||
      node.expanded_base != nullptr) {
    return;
  }
  const Value* types = json::find(node.element, "type");
  if (types == nullptr || !types->IsArray() || types->Size() != 1) return;
  std::string_view code = stringMember((*types)[0], "code");
  if (code == "BackboneElement" || code == "Element" || code.empty()) return;
  node.children.clear();
  node.children_known = false;
}

// A single-valued choice with a mandatory type slice can only hold that type: the Publisher
// narrows the choice itself to the slice's types and minimum and closes the slicing (US Core
// smoking status: effective[x] 1..1 dateTime, with effective[x]:effectiveDateTime 1..1).
void Generator::narrowMandatoryTypeSlices(Node& node) {
  for (auto& child : node.children) narrowMandatoryTypeSlices(*child);
  for (auto& slice : node.slices) narrowMandatoryTypeSlices(*slice);
  if (!isChoice(node.name) || node.slices.empty() || stringMember(node.element, "max") != "1") {
    return;
  }
  Value* slicing = json::find(node.element, "slicing");
  const Value* discriminators = slicing ? json::find(*slicing, "discriminator") : nullptr;
  if (discriminators == nullptr || !discriminators->IsArray() || discriminators->Size() != 1 ||
      stringMember((*discriminators)[0], "type") != "type") {
    return;
  }
  for (auto& slice : node.slices) {
    const Value* min = json::find(slice->element, "min");
    auto slice_min = min ? json::numberAsInt64(*min) : std::nullopt;
    const Value* types = json::find(slice->element, "type");
    if (!slice_min || *slice_min < 1 || types == nullptr) continue;
    slicing->RemoveMember("rules");
    json::addString(*slicing, "rules", "closed", allocator_);
    // Member pointers into node.element do not survive the removals below.
    node.element.RemoveMember("min");
    json::addMember(node.element, "min", Value(*min, allocator_), allocator_);
    // The choice keeps its own type entries (Reference(Any)) for the codes the slice allows.
    Value narrowed(rapidjson::kArrayType);
    if (const Value* own = json::find(node.element, "type"); own != nullptr && own->IsArray()) {
      for (const Value& own_type : own->GetArray()) {
        for (const Value& slice_type : types->GetArray()) {
          if (stringMember(own_type, "code") == stringMember(slice_type, "code")) {
            narrowed.PushBack(Value(own_type, allocator_), allocator_);
            break;
          }
        }
      }
    }
    node.element.RemoveMember("type");
    json::addMember(node.element, "type", std::move(narrowed), allocator_);
    return;
  }
}

Result<Node*> Generator::locate(const std::vector<Segment>& segments, std::string_view where) {
  if (segments.empty() || segments[0].name != root_->name) {
    return Error{std::string(where) + ": path does not start with '" + root_->name + "'"};
  }
  Node* node = root_.get();
  std::string node_id = root_->name;
  // Whether we are below a slice among children its base lists (not ones expanded from a type).
  bool inside_slice = false;
  for (size_t index = 1; index < segments.size(); ++index) {
    if (index > 1) {
      node_id += "." + node->name;
      if (!node->slice_name.empty()) node_id += ":" + node->slice_name;
    }
    const Segment& segment = segments[index];
    if (node->expanded_base != nullptr || !node->children_known) inside_slice = false;
    Status status;
    std::string renamed_type;
    Node* child = findChild(*node, segment.name, where, renamed_type, status);
    if (child == nullptr) return Error{status.message()};
    if (!renamed_type.empty()) {
      // Below a slice a lone renamed choice restricts in place; when the differential also
      // constrains the choice itself, the Publisher slices it by type there too (CARIN BB
      // supportingInfo:servicefacility.value[x] with valueReference).
      bool in_place = inside_slice && !choices_in_differential_.contains(node_id + "." + child->name);
      auto chosen = chooseType(*child, renamed_type, in_place, where);
      if (!chosen) return chosen.error();
      child = *chosen;
      if (child != nullptr && !child->slice_name.empty()) inside_slice = true;
    }
    if (segment.slice.empty()) {
      node = child;
      continue;
    }
    // value[x]:valueQuantity on an unsliced choice is the same as valueQuantity.
    std::string_view child_name = child->name;
    if (isChoice(child_name) && json::find(child->element, "slicing") == nullptr) {
      std::string_view stem = child_name.substr(0, child_name.size() - 3);
      std::string_view slice = segment.slice;
      if (slice.size() > stem.size() && slice.substr(0, stem.size()) == stem) {
        auto chosen = chooseType(*child, std::string(slice.substr(stem.size())), inside_slice,
                                 where);
        if (!chosen) return chosen.error();
        node = *chosen;
        if (!node->slice_name.empty()) inside_slice = true;
        continue;
      }
    }
    inside_slice = true;
    // Walk down re-slices (a/b): each level lives in the slices of the one above.
    Node* sliced = child;
    std::vector<std::string_view> parts = splitSlices(segment.slice);
    std::string full_name;
    for (size_t part = 0; part < parts.size(); ++part) {
      full_name += (part == 0 ? "" : "/") + std::string(parts[part]);
      Node* found = nullptr;
      for (auto& slice : sliced->slices) {
        if (slice->slice_name == full_name) found = slice.get();
      }
      if (found == nullptr) {
        if (index + 1 != segments.size() || part + 1 != parts.size()) {
          return Error{std::string(where) + ": slice '" + full_name +
                       "' is used before it is defined"};
        }
        if (json::find(sliced->element, "slicing") == nullptr) {
          if (part == 0 && (child->name == "extension" || child->name == "modifierExtension")) {
            Value slicing(rapidjson::kObjectType);
            Value discriminator(rapidjson::kObjectType);
            json::addString(discriminator, "type", "value", allocator_);
            json::addString(discriminator, "path", "url", allocator_);
            Value discriminators(rapidjson::kArrayType);
            discriminators.PushBack(discriminator, allocator_);
            json::addMember(slicing, "discriminator", std::move(discriminators), allocator_);
            slicing.AddMember("ordered", false, allocator_);
            json::addString(slicing, "rules", "open", allocator_);
            json::addMember(sliced->element, "slicing", std::move(slicing), allocator_);
          } else if (part == 0) {
            return Error{std::string(where) + ": slice '" + full_name + "' of '" + child->name +
                         "' without a slicing on its base"};
          }
        }
        auto slice = newSlice(*sliced, full_name);
        found = slice.get();
        sliced->slices.push_back(std::move(slice));
      }
      sliced = found;
    }
    node = sliced;
  }
  return node;
}

bool Generator::typeAllowed(std::string_view code, const Value& base_type) {
  std::string_view base_code = stringMember(base_type, "code");
  if (base_code == code) return true;
  if (base_code.substr(0, kSystemTypePrefix.size()) == kSystemTypePrefix) {
    // Primitive value slots: System.String carries the FHIR type in an extension.
    if (const Value* extensions = json::find(base_type, "extension");
        extensions != nullptr && extensions->IsArray()) {
      for (const Value& extension : extensions->GetArray()) {
        if (stringMember(extension, "url") == kFhirTypeExtension) {
          return stringMember(extension, "valueUrl") == code ||
                 stringMember(extension, "valueUri") == code;
        }
      }
    }
    return !code.empty() && std::islower(static_cast<unsigned char>(code[0]));
  }
  if (base_code == "Element" || base_code == "BackboneElement" || base_code == "Resource" ||
      base_code == "DomainResource" || base_code == "*") {
    return true;
  }
  // A specialisation (Age of Quantity) is allowed where its ancestor is.
  std::string url = std::string(kCoreSdPrefix) + std::string(code);
  const std::string wanted = std::string(kCoreSdPrefix) + std::string(base_code);
  for (int depth = 0; depth < 8; ++depth) {
    const Value* definition = resolve_(url);
    if (definition == nullptr) return false;
    std::string_view parent = stringMember(*definition, "baseDefinition");
    if (parent.empty()) return false;
    if (parent == wanted) return true;
    url = std::string(parent);
  }
  return false;
}

Status Generator::mergeTypes(Node& node, const Value& diff_types, std::string_view where) {
  if (!diff_types.IsArray()) return Error{std::string(where) + ": type is not an array"};
  const Value* base_types = json::find(node.element, "type");
  if (base_types != nullptr && base_types->IsArray() && !base_types->Empty()) {
    for (const Value& type : diff_types.GetArray()) {
      std::string_view code = stringMember(type, "code");
      bool allowed = false;
      for (const Value& base_type : base_types->GetArray()) {
        if (typeAllowed(code, base_type)) {
          allowed = true;
          break;
        }
      }
      if (!allowed) {
        return Error{std::string(where) + ": type '" + std::string(code) +
                     "' is not allowed by the base element"};
      }
    }
  }
  node.element.RemoveMember("type");
  json::addMember(node.element, "type", Value(diff_types, allocator_), allocator_);
  dropBindingWithoutCodedType(node.element);
  return Status::Ok();
}

Status Generator::apply(Node& node, const Value& diff, std::string_view where) {
  for (auto member = diff.MemberBegin(); member != diff.MemberEnd(); ++member) {
    std::string_view key(member->name.GetString(), member->name.GetStringLength());
    const Value& value = member->value;
    if (key == "id" || key == "path" || key == "sliceName") continue;
    if (key == "type") {
      Status merged = mergeTypes(node, value, where);
      if (!merged) return merged;
      continue;
    }
    Value* existing = json::find(node.element, key);
    if (key == "binding" && existing != nullptr && existing->IsObject() && value.IsObject()) {
      // A differential binding may restate only the strength; the rest is inherited.
      for (auto part = value.MemberBegin(); part != value.MemberEnd(); ++part) {
        std::string_view part_key(part->name.GetString(), part->name.GetStringLength());
        existing->RemoveMember(part->name);
        json::addMember(*existing, part_key, Value(part->value, allocator_), allocator_);
      }
      continue;
    }
    if ((key == "constraint" || key == "mapping" || key == "condition") && existing != nullptr &&
        existing->IsArray() && value.IsArray()) {
      // Inherited invariants stay; a differential constraint with the same key replaces one.
      for (const Value& added : value.GetArray()) {
        bool replaced = false;
        if (key == "constraint") {
          std::string_view constraint_key = stringMember(added, "key");
          for (Value& present : existing->GetArray()) {
            if (stringMember(present, "key") == constraint_key) {
              present.CopyFrom(added, allocator_);
              replaced = true;
            }
          }
        } else if (key == "condition" && json::isString(added)) {
          for (const Value& present : existing->GetArray()) {
            if (json::isString(present) && json::stringView(present) == json::stringView(added)) {
              replaced = true;
            }
          }
        }
        if (!replaced) existing->PushBack(Value(added, allocator_), allocator_);
      }
      continue;
    }
    if (existing != nullptr) node.element.RemoveMember(member->name);
    json::addMember(node.element, key, Value(value, allocator_), allocator_);
  }
  return Status::Ok();
}

void Generator::emit(Node& node, const std::string& parent_id, const std::string& parent_path,
                     Value& out) {
  std::string path = parent_path.empty() ? node.name : parent_path + "." + node.name;
  std::string id = parent_id.empty() ? node.name : parent_id + "." + node.name;
  if (!node.slice_name.empty()) id += ":" + node.slice_name;
  Value element(rapidjson::kObjectType);
  json::addString(element, "id", id, allocator_);
  bool path_written = false;
  for (auto member = node.element.MemberBegin(); member != node.element.MemberEnd(); ++member) {
    std::string_view key(member->name.GetString(), member->name.GetStringLength());
    if (key == "id") continue;
    if (key == "sliceName" && node.slice_name.empty()) continue;
    if (key == "path") {
      json::addString(element, "path", path, allocator_);
      path_written = true;
      continue;
    }
    json::addMember(element, key, std::move(member->value), allocator_);
  }
  if (!path_written) json::addString(element, "path", path, allocator_);
  out.PushBack(element, allocator_);
  for (auto& child : node.children) emit(*child, id, path, out);
  for (auto& slice : node.slices) emit(*slice, parent_id, parent_path, out);
}

// Splits an element id (Observation.component:systolic.value[x]) into its segments. Ids are
// only trusted when they have as many segments as the path; otherwise the path, the element's
// sliceName and the slices of the previous differential element give the segments.
std::vector<Segment> segmentsOf(const Value& diff, const std::vector<Segment>& previous) {
  std::string_view path = stringMember(diff, "path");
  std::vector<std::string_view> names;
  for (size_t start = 0;;) {
    size_t dot = path.find('.', start);
    names.push_back(path.substr(start, dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  std::vector<Segment> segments;
  std::string_view id = stringMember(diff, "id");
  if (!id.empty()) {
    for (size_t start = 0;;) {
      size_t dot = id.find('.', start);
      std::string_view part = id.substr(start, dot - start);
      size_t colon = part.find(':');
      segments.push_back(Segment{std::string(part.substr(0, colon)),
                                 colon == std::string_view::npos
                                     ? std::string()
                                     : std::string(part.substr(colon + 1))});
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    if (segments.size() == names.size()) return segments;
    segments.clear();
  }
  bool same_prefix = true;
  for (size_t index = 0; index < names.size(); ++index) {
    Segment segment{std::string(names[index]), std::string()};
    if (index + 1 == names.size()) {
      segment.slice = std::string(stringMember(diff, "sliceName"));
    } else if (same_prefix && index < previous.size() && previous[index].name == names[index]) {
      segment.slice = previous[index].slice;
    } else {
      same_prefix = false;
    }
    segments.push_back(std::move(segment));
  }
  return segments;
}

Result<Value> Generator::run() {
  std::string_view base_url = stringMember(profile_, "baseDefinition");
  std::string_view url = stringMember(profile_, "url");
  std::string label = url.empty() ? std::string("StructureDefinition") : std::string(url);
  if (base_url.empty()) return Error{label + ": no baseDefinition"};
  const Value* base = resolve_(base_url);
  if (base == nullptr) return Error{label + ": base '" + std::string(base_url) + "' not found"};
  const Value* base_snapshot = json::find(*base, "snapshot");
  const Value* base_elements = base_snapshot ? json::find(*base_snapshot, "element") : nullptr;
  if (base_elements == nullptr) {
    return Error{label + ": base '" + std::string(base_url) + "' has no snapshot"};
  }
  auto tree = buildBaseTree(*base_elements, base_url);
  if (!tree) return tree.error();
  base_root_ = std::move(tree.value());
  std::string_view type = stringMember(profile_, "type");
  if (!type.empty() && type != base_root_->name) {
    return Error{label + ": type '" + std::string(type) + "' differs from the base's '" +
                 base_root_->name + "'"};
  }
  root_ = clone(*base_root_, true);

  const Value* differential = json::find(profile_, "differential");
  const Value* diff_elements = differential ? json::find(*differential, "element") : nullptr;
  if (diff_elements != nullptr && diff_elements->IsArray()) {
    std::vector<std::vector<Segment>> all_segments;
    std::vector<Segment> previous;
    for (const Value& diff : diff_elements->GetArray()) {
      if (!diff.IsObject() || stringMember(diff, "path").empty()) {
        return Error{label + ": differential element without a path"};
      }
      all_segments.push_back(segmentsOf(diff, previous));
      previous = all_segments.back();
      const Segment& last = previous.back();
      if (isChoice(last.name) && last.slice.empty()) {
        std::string id;
        for (const Segment& segment : previous) {
          if (!id.empty()) id += ".";
          id += segment.name;
          if (!segment.slice.empty()) id += ":" + segment.slice;
        }
        choices_in_differential_.insert(id);
      }
    }
    std::vector<std::string> ids;
    for (const auto& segments : all_segments) {
      std::string id;
      for (const Segment& segment : segments) {
        if (!id.empty()) id += ".";
        id += segment.name;
        if (!segment.slice.empty()) id += ":" + segment.slice;
      }
      ids.push_back(std::move(id));
    }
    size_t diff_index = 0;
    for (const Value& diff : diff_elements->GetArray()) {
      std::string_view named = stringMember(diff, "id");
      std::string where = label + ": differential element '" +
                          std::string(named.empty() ? stringMember(diff, "path") : named) + "'";
      auto node = locate(all_segments[diff_index], where);
      if (!node) return node.error();
      Status applied = apply(**node, diff, where);
      if (!applied) return Error{applied.message()};
      const std::string prefix = ids[diff_index] + ".";
      bool constrains_children = false;
      for (const std::string& other : ids) {
        if (other.rfind(prefix, 0) == 0) constrains_children = true;
      }
      if (!constrains_children) dropInheritedDatatypeChildren(**node);
      ++diff_index;
    }
  }
  narrowMandatoryTypeSlices(*root_);
  Value elements(rapidjson::kArrayType);
  emit(*root_, std::string(), std::string(), elements);
  return elements;
}

}  // namespace

Result<json::Document> generateSnapshot(const json::Value& profile, const Resolver& resolve) {
  if (!profile.IsObject()) return Error{"StructureDefinition is not an object"};
  json::Document out;
  out.CopyFrom(profile, out.GetAllocator());
  Generator generator(profile, resolve, out.GetAllocator());
  auto elements = generator.run();
  if (!elements) return elements.error();
  out.RemoveMember("snapshot");
  Value snapshot(rapidjson::kObjectType);
  json::addMember(snapshot, "element", std::move(elements.value()), out.GetAllocator());
  json::addMember(out, "snapshot", std::move(snapshot), out.GetAllocator());
  return out;
}

}  // namespace fhir::snapshot
