"""Answer extraction and comparison: numbers (GSM8K), \\boxed{} answers (MATH), short texts (TriviaQA)."""

from __future__ import annotations

import re
import string

NUMBER = re.compile(r"-?[$]?\d[\d,]*(?:\.\d+)?|-?\.\d+")


# ------------------------------------------------------------------------------------------- numbers


def normalize_number(text: str) -> str | None:
    """'$1,234.50' -> '1234.5'; None when text is not a number."""
    text = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return None
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def gsm8k_answer(text: str) -> str | None:
    """The number after '####' if there is one, else the last number in the text."""
    if "####" in text:
        after = text.split("####", 1)[1]
        found = NUMBER.findall(after)
        if found:
            return normalize_number(found[0])
    found = NUMBER.findall(text)
    return normalize_number(found[-1]) if found else None


# ------------------------------------------------------------------------------------------ MATH


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:]
    if rest.startswith("\\boxed ") and "{" not in rest.split("$", 1)[0][:7]:
        return rest[len("\\boxed ") :].split("$", 1)[0].strip()
    open_at = rest.find("{")
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(rest)):
        depth += {"{": 1, "}": -1}.get(rest[i], 0)
        if depth == 0:
            return rest[open_at + 1 : i]
    return None


FINAL_ANSWER = re.compile(r"final answer is\s*\$?(.+?)\$?(?:\.\s|\.?$|\n|\. I hope)", re.IGNORECASE)


def math_answer(text: str) -> str | None:
    """A MATH completion's answer: the last \\boxed{}, else "The final answer is X"."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    match = FINAL_ANSWER.search(text)
    return match.group(1).strip() if match else None


_LATEX_DROP = [
    "\\left",
    "\\right",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "$",
    "\\%",
    "%",
    "^\\circ",
    "^{\\circ}",
    "\\displaystyle",
]


def normalize_math(text: str) -> str:
    """Hendrycks-style string normalisation of a MATH answer."""
    text = text.strip()
    text = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", text)
    text = re.sub(r"\\mbox\{\s*([^}]*)\}", r"\1", text)
    for token in _LATEX_DROP:
        text = text.replace(token, "")
    text = text.replace("dfrac", "frac").replace("tfrac", "frac").replace(" ", "")
    text = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", text)
    text = re.sub(r"^[a-zA-Z]\s*=", "", text)  # "x=5" -> "5"
    if text.startswith("."):
        text = "0" + text
    text = text.rstrip(".")
    if re.fullmatch(r"-?\d+\.0+", text):
        text = text.split(".")[0]
    return text


def _latex_to_sympy(text: str):
    """Parse a small LaTeX subset (fractions, roots, powers, pi, products) into a sympy expression."""
    import sympy

    expr = text
    for _ in range(5):
        expr = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", expr)
        expr = re.sub(r"\\sqrt\[([^{}]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", expr)
        expr = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", expr)
    expr = expr.replace("\\pi", "pi").replace("\\cdot", "*").replace("\\times", "*").replace("^", "**")
    expr = expr.replace("{", "(").replace("}", ")").replace("\\", "")
    return sympy.sympify(expr, rational=True)


def math_equal(prediction: str | None, reference: str | None) -> bool:
    """Equal after normalisation, or symbolically equal (sympy) when both parse."""
    if prediction is None or reference is None:
        return False
    a, b = normalize_math(prediction), normalize_math(reference)
    if a == b:
        return True
    if "," in a or "," in b:  # tuples / lists: compare element-wise
        left, right = a.strip("()[]").split(","), b.strip("()[]").split(",")
        return len(left) == len(right) and all(math_equal(x, y) for x, y in zip(left, right))
    try:
        import sympy

        return bool(sympy.simplify(_latex_to_sympy(a) - _latex_to_sympy(b)) == 0)
    except Exception:  # not parseable: the string comparison above is the verdict
        return False


# ------------------------------------------------------------------------------------- short text


def normalize_text(text: str) -> str:
    """SQuAD/TriviaQA normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, references: list[str]) -> bool:
    prediction = normalize_text(prediction)
    return any(prediction == normalize_text(r) for r in references)


def substring_match(prediction: str, references: list[str]) -> bool:
    """SubEM (HELMET): some reference occurs in the normalised prediction."""
    prediction = normalize_text(prediction)
    return any(normalize_text(r) in prediction for r in references if normalize_text(r))
