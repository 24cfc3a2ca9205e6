{{/*
Optional objects around the sidecar's admin port, off by default: a NetworkPolicy and a PodMonitor.
Both take a dict: "context" (the chart's root context) and "podLabels" (a map of labels that
selects the workload's pods, e.g. the chart's selector labels). Each renders a whole manifest or
nothing; put `{{ include "logicnets-token-proxy.networkPolicy" (dict ...) }}` in a template file.
*/}}

{{/*
A NetworkPolicy for the workload's pods, when tokenProxy.networkPolicy.enabled: ingress to the
admin port from Prometheus (the namespace and pod selectors) and from tokenProxy.networkPolicy
.kubeletCidrs, plus the app's own rules from extraIngress. Traffic from a pod's own node (the
kubelet's probes) is always allowed by NetworkPolicy. The proxy port listens on loopback and needs
no rule.
*/}}
{{- define "logicnets-token-proxy.networkPolicy" -}}
{{- $root := .context -}}
{{- $np := $root.Values.tokenProxy.networkPolicy -}}
{{- if $np.enabled -}}
{{- if not .podLabels -}}
{{- fail "logicnets-token-proxy.networkPolicy needs podLabels: the labels that select the workload's pods" -}}
{{- end -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ printf "%s-admin" (include "logicnets-token-proxy.configMapName" $root) }}
  labels:
    {{- include "logicnets-token-proxy.labels" $root | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
  policyTypes:
    - Ingress
  ingress:
    - from:
        - namespaceSelector:
            {{- toYaml $np.prometheus.namespaceSelector | nindent 12 }}
          podSelector:
            {{- toYaml $np.prometheus.podSelector | nindent 12 }}
      ports:
        - port: {{ $root.Values.tokenProxy.ports.admin }}
          protocol: TCP
    {{- with $np.kubeletCidrs }}
    - from:
        {{- range . }}
        - ipBlock:
            cidr: {{ . | quote }}
        {{- end }}
      ports:
        - port: {{ $root.Values.tokenProxy.ports.admin }}
          protocol: TCP
    {{- end }}
    {{- with $np.extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
{{- end -}}

{{/* A PodMonitor scraping /metrics on the sidecar's admin port, when tokenProxy.podMonitor.enabled. */}}
{{- define "logicnets-token-proxy.podMonitor" -}}
{{- $root := .context -}}
{{- $pm := $root.Values.tokenProxy.podMonitor -}}
{{- if $pm.enabled -}}
{{- if not .podLabels -}}
{{- fail "logicnets-token-proxy.podMonitor needs podLabels: the labels that select the workload's pods" -}}
{{- end -}}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ include "logicnets-token-proxy.configMapName" $root }}
  labels:
    {{- include "logicnets-token-proxy.labels" $root | nindent 4 }}
    {{- with $pm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
  podMetricsEndpoints:
    - port: proxy-admin
      path: /metrics
      interval: {{ $pm.interval }}
{{- end -}}
{{- end -}}
