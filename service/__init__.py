"""skyqa serving side: exposure preprocessing, DESOM inference clients, verdicts and the streaming daemon.

Never imports TensorFlow or Keras: the daemon image stays small and starts fast.
"""
