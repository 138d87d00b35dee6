// What MirrorMaker 2's own client library makes of a checkpoints topic: for each
// ALIAS=GROUP[,GROUP...] argument, RemoteClusterUtils.translateOffsets(props, ALIAS, GROUP)
// against the cluster at BOOTSTRAP (which holds ALIAS.checkpoints.internal). One line per
// partition: alias, group, topic, partition, offset, tab-separated.
//
//   java -cp '.kafka/libs/*' benches/mm2_harness/TranslateOffsets.java BOOTSTRAP ALIAS=GROUP,...
//
// Run as a single source file (no build step); the benchmark and its test call it.

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.mirror.RemoteClusterUtils;

public class TranslateOffsets {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: TranslateOffsets BOOTSTRAP ALIAS=GROUP[,GROUP...] ...");
            System.exit(2);
        }
        Map<String, Object> props = new HashMap<>();
        props.put("bootstrap.servers", args[0]);
        for (int i = 1; i < args.length; i++) {
            String[] query = args[i].split("=", 2);
            for (String group : query[1].split(",")) {
                Map<TopicPartition, OffsetAndMetadata> offsets =
                    RemoteClusterUtils.translateOffsets(props, query[0], group, Duration.ofSeconds(60));
                Map<String, Long> sorted = new TreeMap<>();
                offsets.forEach((tp, om) -> sorted.put(tp.topic() + "\t" + tp.partition(), om.offset()));
                sorted.forEach((tp, offset) -> System.out.println(query[0] + "\t" + group + "\t" + tp + "\t" + offset));
            }
        }
    }
}
