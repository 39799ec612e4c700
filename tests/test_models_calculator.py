"""The calculator tool: exact arithmetic on GSM8K-style `<<EXPR=` calls, refusals, and the hf
decode loop writing the replies (scripted sampler on a tiny model)."""

import pytest

from reasonloop.models.calculator import MAX_DIGITS, calculate, calculator_reply

# -- calculate / calculator_reply ---------------------------------------------------------


@pytest.mark.parametrize("expression, value", [
    ("3*4", "12"),
    ("48/2", "24"),
    ("19*1.5", "28.5"),
    ("0.1+0.2", "0.3"),  # exact: no binary floating point
    ("10/3", "3.333333"),
    ("2/3", "0.666667"),
    ("-5/3", "-1.666667"),
    ("(2+3)*4", "20"),
    ("2+3*4", "14"),
    ("-(2+3)*4", "-20"),
    ("-7/2", "-3.5"),
    ("6 - 10", "-4"),
    (" 7 ", "7"),
    ("-0.0000001", "0"),  # rounds to zero without a sign
])
def test_calculate_is_exact_arithmetic(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize("expression", [
    "2**10", "5//2", "5%2", "x+1", "abs(-3)", "1/0", "3/(2-2)", "(1+2", "", "3*", "True+1", "1 if 1 else 2",
    "10**40", "9" * (MAX_DIGITS + 1), "9" * MAX_DIGITS + "*10",
    "__import__('os').system('echo pwned')", "().__class__", "[1, 2]", "'a'*3",
])
def test_calculate_refuses_anything_else(expression):
    assert calculate(expression) is None


def test_results_up_to_max_digits_are_computed():
    assert calculate("9" * (MAX_DIGITS - 1) + "*10") == "9" * (MAX_DIGITS - 1) + "0"


def test_nothing_is_evaluated(monkeypatch, capsys):
    import builtins

    def no_eval(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", no_eval)
    monkeypatch.setattr(builtins, "exec", no_eval)
    assert calculate("print('evaluated')") is None
    assert calculate("__import__('os').getcwd()") is None
    assert calculate("(3+5)*2") == "16"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("text, reply", [
    ("so 48/2 = <<48/2=", "24>>"),
    ("<<19*1.5=", "28.5>>"),
    ("a <<10/3=", "3.333333>>"),
    ("<< (1 + 2) * 3 =", "9>>"),
    ("<<3*4=12>> and <<12-5=", "7>>"),  # the last, unanswered call
])
def test_reply_to_a_call_at_the_end(text, reply):
    assert calculator_reply(text) == reply


@pytest.mark.parametrize("text", [
    "no call here", "48/2 = 24", "<<3*4", "<<3*4=12>>", "<<3*4=12", "3*4=", "<<=", "<<2**10=", "<<1/0=",
    "<<x+1=", "<<__import__('os')=", "<<" + "1+" * 40 + "1=",  # longer than a call may be
])
def test_no_reply_without_a_computable_call_at_the_end(text):
    assert calculator_reply(text) is None


def test_longest_call_is_answered():
    expression = "1+" * 39 + "1"  # 79 characters
    assert calculator_reply("Total: <<" + expression + "=") == "40>>"


# -- the hf decode loop -------------------------------------------------------------------

torch = pytest.importorskip("torch")

from reasonloop.models import SamplingParams  # noqa: E402
from reasonloop.models.hf import HFGenerator  # noqa: E402

FILLER = "x"


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    from reasonloop.models.tiny import TinyConfig, create_tiny_model

    texts = [f"Question: {i} boxes of {i + 2}?\nAnswer: {i}*{i + 2} = <<{i}*{i + 2}={i * (i + 2)}>>{i * (i + 2)}\n#### {i * (i + 2)}"
             for i in range(50)]
    path = create_tiny_model(tmp_path_factory.mktemp("calc") / "model", texts,
                             TinyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))
    return HFGenerator(path, batch_size=8)


def ids(gen, text):
    return gen.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture
def scripted(gen, monkeypatch):
    """Make the sampler write `scripts[i]` in batch row i (then FILLER); record what the model is fed."""
    state = {"step": 0, "fed": []}

    def use(*scripts):
        state["scripts"] = [ids(gen, text) for text in scripts]
        state["step"] = 0
        state["fed"] = []

    def sample(logits, temperature, top_p, uniforms):
        step, filler = state["step"], ids(gen, FILLER)[0]
        state["step"] += 1
        rows = [script[step] if step < len(script) else filler for script in state["scripts"]]
        assert len(rows) == logits.shape[0]  # the test keeps every row live to the end
        return torch.tensor(rows, dtype=torch.long)

    forward = gen._forward

    def recording_forward(input_ids, *args):
        if input_ids.shape[1] == 1:
            state["fed"].append(input_ids[:, 0].tolist())
        return forward(input_ids, *args)

    monkeypatch.setattr("reasonloop.models.hf.sample_tokens", sample)
    monkeypatch.setattr(gen, "_forward", recording_forward)
    use.state = state
    return use


def test_a_call_is_answered_and_the_reply_counts_as_generated_tokens(gen, scripted):
    scripted(" so <<3*4=")
    params = SamplingParams(max_new_tokens=20, calculator=True)
    got = gen.generate(["Question: 3 boxes of 4?\nAnswer:"], params)[0][0]
    written, reply = ids(gen, " so <<3*4="), ids(gen, "12>>")
    assert got.text == " so <<3*4=12>>" + FILLER * (20 - len(written) - len(reply))
    assert got.tokens == 20 and got.finish_reason == "length"
    fed = [step[0] for step in scripted.state["fed"]]  # the model goes on from the reply
    assert fed[: len(written) + len(reply)] == written + reply


def test_without_the_calculator_the_model_writes_on(gen, scripted):
    scripted(" so <<3*4=")
    got = gen.generate(["Question: 3 boxes of 4?\nAnswer:"], SamplingParams(max_new_tokens=20))[0][0]
    assert got.text == " so <<3*4=" + FILLER * (20 - len(ids(gen, " so <<3*4=")))
    assert "12" not in got.text and got.tokens == 20


def test_replies_stay_in_their_rows(gen, scripted):
    prompts = ["Q: a?\nA:", "Question: three boxes?\nAnswer:", "Question: how many boxes are left now?\nAnswer:"]
    assert len(ids(gen, prompts[0])) < len(ids(gen, prompts[1])) < len(ids(gen, prompts[2]))  # batch order = this order
    scripts = [" so <<3*4=", " then 7 = 7, x <<10/4=", " no call, 3*4="]
    scripted(*scripts)
    params = SamplingParams(max_new_tokens=30, calculator=True)
    got = [samples[0] for samples in gen.generate(prompts, params)]
    assert got[0].text.startswith(" so <<3*4=12>>" + FILLER) and "2.5" not in got[0].text
    assert got[1].text.startswith(" then 7 = 7, x <<10/4=2.5>>" + FILLER) and "12" not in got[1].text
    assert got[2].text == " no call, 3*4=" + FILLER * (30 - len(ids(gen, scripts[2])))  # untouched
    assert [c.tokens for c in got] == [30, 30, 30]
    scripted(*scripts)
    plain = [samples[0] for samples in gen.generate(prompts, SamplingParams(max_new_tokens=30))]
    assert plain[2] == got[2]


def test_a_call_as_long_as_the_calculator_takes_is_answered(gen, scripted):
    call = "<<" + "1+" * 39 + "1="
    assert len(ids(gen, call)) > 64
    scripted(call)
    got = gen.generate(["Q: total?\nA:"], SamplingParams(max_new_tokens=len(ids(gen, call)) + 8, calculator=True))[0][0]
    assert got.text.startswith(call + "40>>")


def test_stop_strings_still_apply_after_a_reply(gen, scripted):
    scripted(" <<3*4=")
    params = SamplingParams(max_new_tokens=20, stop=(">>",), calculator=True)
    got = gen.generate(["Q: a?\nA:"], params)[0][0]
    assert got.text == " <<3*4=12" and got.finish_reason == "stop"
