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
        "order.sendConfirmationEmail",
        "payment.charge",
        "reports.daily",
        "reports.export",
        "shipping.ship",
    ]
