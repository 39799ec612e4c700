"""Named pools that templates draw from with `sample(pool)`.

The GSM-Symbolic files name these pools but do not publish their contents. Where the
published generated instances show a pool's values (`fraction_alph`, `fraction_decimals`)
ours hold exactly those; the others are chosen to be varied and sensible and to include
the values the files themselves use as defaults (so binding defaults and sampling agree). Pools of numbers written as words
hold `Labeled(text, value)` items: the text goes into the question, the value into
arithmetic, and `item[0]` / `item[1]` give text / value as in the files. See
docs/templates.md for the full lists and the reasoning behind them.

Add a pool with `register_pool(name, items)`.
"""

from __future__ import annotations

from fractions import Fraction as F
from typing import Any, Iterable

from reasonloop.sources.templates.values import Labeled

POOLS: dict[str, tuple[Any, ...]] = {}


def register_pool(name: str, items: Iterable[Any]) -> tuple[Any, ...]:
    values = tuple(items)
    if not values:
        raise ValueError(f"pool {name!r} is empty")
    POOLS[name] = values
    return values


def labeled(*pairs: tuple[str, Any]) -> list[Labeled]:
    return [Labeled(text, value) for text, value in pairs]


NAMES_MALE = register_pool("names_male", [
    "Allan", "Artie", "Ben", "Bill", "Billie", "Brandon", "Brendan", "Brett", "Craig", "Deandre", "Frankie",
    "Garret", "Garrett", "George", "Jack", "Jaime", "James", "Jasper", "Jerry", "John", "Mike", "Nate", "Peter",
    "Raphael", "Roger", "Sunny", "Watson", "Benny", "Chester", "Cole", "David", "Dax", "Gordon", "Harry", "Joe",
    "Josh", "Lamar", "Pierson", "Ray", "Teddy", "Ahmed", "Ravi", "Kenji", "Diego", "Mateo", "Omar", "Kwame",
    "Liam", "Noah", "Ivan", "Tariq", "Wei", "Luca", "Arjun", "Samuel", "Hugo", "Felix", "Marcus", "Tomas", "Yusuf",
])
NAMES_FEMALE = register_pool("names_female", [
    "Alison", "Angela", "Aries", "Candy", "Carmen", "Carol", "Dana", "Doxa", "Elise", "Emily", "Jackie",
    "Jennifer", "Jewel", "Julia", "Julie", "Katy", "Maria", "Martha", "Mary", "Morgan", "Pat", "Sally", "Sara",
    "Shiela", "Sophie", "Toula", "Abby", "Dorothy", "Emma", "Mei", "Mia", "Nikita", "Rose", "Stacy", "Aisha",
    "Priya", "Yuki", "Fatima", "Olga", "Amara", "Sofia", "Lucia", "Ines", "Hana", "Zara", "Grace", "Nadia",
    "Chloe", "Leila", "Ana", "Ruth", "Keiko", "Freya",
])
NAMES_UNISEX = ("Charlie", "Sam", "Alex", "Jordan", "Taylor", "Robin", "Kim", "Jamie", "Riley", "Casey")
register_pool("names", NAMES_MALE + NAMES_FEMALE + NAMES_UNISEX)

register_pool("currencies_sym", ["$", "€", "£", "₹"])

# Multipliers as written in text ("twice as many", "triple the number").
register_pool("multi_times", labeled(("twice", 2), ("three times", 3), ("four times", 4), ("five times", 5),
                                     ("six times", 6), ("ten times", 10)))
register_pool("multiple", labeled(("double", 2), ("triple", 3), ("quadruple", 4)))
register_pool("multiple_ice", labeled(("twice", 2), ("thrice", 3)))

# Fractions: word forms, numeral forms, and a mix of both.
register_pool("fractions", labeled(("half", F(1, 2)), ("a third", F(1, 3)), ("a quarter", F(1, 4)),
                                   ("a fifth", F(1, 5)), ("two thirds", F(2, 3)), ("three quarters", F(3, 4))))
# Exactly the words GSM-Symbolic's published p2 instances show (hyphenated, not always
# reduced); the authors' full list is not published, so more words may belong here.
register_pool("fraction_alph", labeled(("one-half", F(1, 2)), ("two-fourths", F(2, 4)), ("two-sixths", F(2, 6)),
                                       ("three-sixths", F(3, 6)), ("one-seventh", F(1, 7)),
                                       ("one-ninth", F(1, 9)), ("four-fifths", F(4, 5))))
# Unit fractions first: the files take `fraction_nums[:4]` for "1/2 off"-style discounts.
register_pool("fraction_nums", labeled(("1/2", F(1, 2)), ("1/3", F(1, 3)), ("1/4", F(1, 4)), ("1/5", F(1, 5)),
                                       ("1/6", F(1, 6)), ("1/8", F(1, 8)), ("1/10", F(1, 10)), ("2/3", F(2, 3)),
                                       ("3/4", F(3, 4)), ("2/5", F(2, 5)), ("3/5", F(3, 5)), ("3/8", F(3, 8))))
register_pool("fraction_alnum", labeled(("half", F(1, 2)), ("1/2", F(1, 2)), ("one-third", F(1, 3)),
                                        ("1/3", F(1, 3)), ("two-thirds", F(2, 3)), ("2/3", F(2, 3)),
                                        ("one-quarter", F(1, 4)), ("1/4", F(1, 4)), ("three quarters", F(3, 4)),
                                        ("3/4", F(3, 4)), ("one-fifth", F(1, 5)), ("1/5", F(1, 5)),
                                        ("two-fifths", F(2, 5)), ("three-fifths", F(3, 5)), ("1/8", F(1, 8)),
                                        ("1/10", F(1, 10)), ("1/16", F(1, 16))))
# 0.1, 0.2, ..., 0.9: the values the published p2 instances use.
register_pool("fraction_decimals", [F(tenths, 10) for tenths in range(1, 10)])

# Units written in singular; the files append "s" for the plural.
register_pool("weights_sm", ["ounce", "gram"])
register_pool("weights_med", ["pound", "kilogram"])
register_pool("length_lg", ["mile", "kilometer"])

# Nouns with regular plurals (the files write "{fruit}s").
register_pool("fruits", ["apple", "banana", "pineapple", "orange", "pear", "plum", "kiwi", "lemon", "apricot",
                         "melon", "papaya", "coconut", "lime", "fig", "guava", "nectarine"])
register_pool("colors", ["red", "blue", "green", "yellow", "orange", "purple", "pink", "white", "black", "brown",
                         "gray", "teal"])
register_pool("cities", ["Los Angeles", "Chicago", "Toronto", "London", "Paris", "Tokyo", "Sydney", "Mumbai",
                         "Berlin", "Madrid", "Cairo", "Nairobi", "Seoul", "Mexico City", "Lagos", "Lima"])
register_pool("sports", ["basketball", "soccer", "tennis", "volleyball", "baseball", "hockey", "badminton",
                         "cricket", "rugby", "golf", "table tennis", "handball"])
# In calendar order: sample_sequential takes consecutive days.
register_pool("weekdays", ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])

# Character pools.
register_pool("alphabet", [chr(code) for code in range(ord("A"), ord("Z") + 1)])
register_pool("hiragana", list("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"))
register_pool("abjad", list("ابتثجحخدذرزسشصضطظعغفقكلمنهوي"))
