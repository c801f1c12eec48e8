"""Reading the test guest's /echo answer: a line per fact ("method GET",
"target /t/echo?x=1") and "header <name> <hex value>" per request header."""


def parse_echo(body):
    """(facts, [(name, value bytes)]) in the order the guest saw them."""
    facts, headers = {}, []
    for line in body.decode().splitlines():
        key, _, rest = line.partition(" ")
        if key == "header":
            name, _, value = rest.partition(" ")
            headers.append((name, bytes.fromhex(value)))
        else:
            facts[key] = rest
    return facts, headers
