import pytest

from firetasks.registry import HandlerRegistry
from shop.handlers import registry as shop_registry


def noop(task):
    return None


def test_lookup_by_type_and_action():
    registry = HandlerRegistry()
    registry.register("order", "sendConfirmationEmail", noop)
    assert registry.lookup("order", "sendConfirmationEmail").handler is noop
    assert registry.lookup("order", "sendconfirmationemail") is None
    assert registry.lookup("email", "sendConfirmationEmail") is None


def test_dotted_actions_name_nested_namespaces():
    registry = HandlerRegistry()

    @registry.handler("inventory", "mutations.initiateOrderProcessing")
    def initiate(task):
        return None

    assert registry.lookup("inventory", "mutations.initiateOrderProcessing").handler is initiate
    assert registry.lookup("inventory", "mutations") is None
    assert registry.lookup("inventory.mutations", "initiateOrderProcessing") is None


def test_a_name_is_registered_once():
    registry = HandlerRegistry()
    registry.register("order", "x", noop)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("order", "x", noop)


@pytest.mark.parametrize(("type_", "action"), [("or der", "x"), ("order", "x."), ("", "x")])
def test_bad_names_are_refused_at_registration(type_, action):
    with pytest.raises(ValueError, match="is not a"):
        HandlerRegistry().register(type_, action, noop)


def test_the_shop_registers_the_seed_handlers_and_its_daily_report():
    assert shop_registry.names() == [
        "inventory.mutations.initiateOrderProcessing",
        "order.initiateProcessing",
        "order.notifyChanged",
        "order.sendConfirmationEmail",
        "payment.charge",
        "reports.daily",
        "reports.export",
        "shipping.dispatch",
        "shipping.ship",
    ]


def test_handlers_declare_searchable_data_fields():
    registry = HandlerRegistry()

    @registry.handler("order", "charge", searchable=("orderId", "email", "orderId"))
    def charge(task):
        return None

    @registry.periodic("reports", "daily", schedule="every day 06:00", searchable=("day",))
    def daily(task):
        return None

    registry.register("order", "ship", noop, searchable=["orderId"])
    registry.register("order", "note", noop)
    assert registry.lookup("order", "charge").searchable == ("orderId", "email")
    assert registry.lookup("order", "note").searchable == ()
    assert registry.searchable() == {"day": ["reports.daily"],
                                     "email": ["order.charge"],
                                     "orderId": ["order.charge", "order.ship"]}
    assert HandlerRegistry.combine(registry).searchable() == registry.searchable()


@pytest.mark.parametrize("field", ["order id", "data.orderId", "1st", "", "__name__", "ö", 7,
                                   "x" * 101])
def test_a_searchable_field_must_be_a_field_name(field):
    with pytest.raises(ValueError, match=r"'order\.charge': searchable field .* is not a field "
                                         r"name like 'orderId'"):
        HandlerRegistry().register("order", "charge", noop, searchable=(field,))


def test_searchable_as_a_bare_string_is_refused_saying_how():
    with pytest.raises(ValueError, match=r"searchable takes a tuple of field names, like "
                                         r"searchable=\('orderId',\)"):
        HandlerRegistry().handler("order", "charge", searchable="orderId")(noop)
