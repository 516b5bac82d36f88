// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Types": ofType(), is(), as(), type().

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {

namespace {

std::string typeNameArg(const Node& arg, std::string* ns) {
  // A type specifier parsed as an expression: Identifier or Namespace.Identifier.
  if (arg.op == Op::kMember && !arg.has_source) return arg.name;
  if (arg.op == Op::kMember && arg.has_source && arg.children[0]->op == Op::kMember &&
      !arg.children[0]->has_source) {
    *ns = arg.children[0]->name;
    return arg.name;
  }
  throw EvalError{"expected a type name argument"};
}

}  // namespace

Collection Evaluator::typeFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kOfType:
    case Fn::kIs:
    case Fn::kAs: {
      std::string ns;
      std::string type = typeNameArg(call.arg(0), &ns);
      checkTypeName(ns, type);
      if (node.fn == Fn::kOfType || (node.fn == Fn::kAs && focus.size() > 1 &&
                                     !context_.as_requires_singleton)) {
        Collection out;
        for (const Item& item : focus) {
          if (isType(item, ns, type, true)) out.push_back(item);
        }
        return out;
      }
      const Item* item = call.single(node.name.c_str());
      if (item == nullptr) return {};
      bool match = isType(*item, ns, type, node.fn == Fn::kAs);
      if (node.fn == Fn::kIs) return boolean(match);
      return match ? Collection{*item} : Collection{};
    }

    case Fn::kType: {
      Collection out;
      for (const Item& item : focus) {
        std::string name;
        if (item.isNode()) {
          std::string_view type = item.typeName();
          name = "FHIR." + std::string(type.rfind("System.", 0) == 0 ? type.substr(7) : type);
        } else {
          name = "System." + std::string(item.typeName());
        }
        Item info = Item::string(std::move(name));
        info.type_name_ = "TypeInfo";
        out.push_back(std::move(info));
      }
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
