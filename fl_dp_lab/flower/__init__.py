"""DP-FedAvg on Flower (notebook 11): the same server round and client update, over messages.

- ``fl_dp_lab.flower.app``: the ClientApp (``local_update`` per ``train``
  message), the run config and the ``UserLevelDP`` / ``LocalSGD`` it builds;
- ``fl_dp_lab.flower.server``: the DP-FedAvg ServerApp, whose round is
  ``fl_dp_lab.federated.DPFedAvgServer.round``, and Flower's own DP wrapper beside it;
- ``fl_dp_lab.flower.simulation``: ``simulate``, Flower's simulation engine
  inside a small machine's limits, and its log helpers.

The submodules import Flower (``flwr``); this package file imports nothing,
so ``flwr run`` loads ``fl_dp_lab.flower.server:server_app`` and
``fl_dp_lab.flower.app:client_app`` directly.
"""

__all__ = ["app", "server", "simulation"]
